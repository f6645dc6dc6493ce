"""Live mode: classify microphone audio as it streams in, with the recurrent (step) view of a causal S4 model.

Each chunk is resampled to the model's rate (seamlessly: `StreamResampler`) and fed through the recurrent
view, `model.step_chunk`: the state carried from the last chunk plus this chunk's samples, O(N) per sample and
channel, nothing recomputed (exactly what calling `model.step` sample by sample gives, without Python's
per-sample overhead). The features the model emits over the last second are averaged and sent through
`model.head`, which is what `forward` does for a one-second clip. Should stepping still be slower than real
time (a large model on a slow CPU), the "auto" engine notices on the first chunk and answers each chunk with
`forward` on the last second of audio instead. The status line reports the measured real-time factor.
"""

from __future__ import annotations

import logging
import math
import time
from collections import deque
from dataclasses import dataclass, field

import numpy as np
import torch

from app.handlers import (
    SILENCE_DBFS,
    LoadedModel,
    one_thread,
    parse_rate,
    probabilities,
    rms_dbfs,
    window_samples,
)
from training.audio import AudioError, pad_or_trim, resample, to_mono_float32
from training.inference import dt_scale_for, predict_logits

log = logging.getLogger(__name__)

ENGINES = ("auto", "step", "window")
PROBE_SECONDS = 0.05  # audio stepped to measure the step view's speed before "auto" commits to it


class StreamResampler:
    """Resample a stream chunk by chunk exactly as `training.audio.resample` would resample it whole.

    torchaudio's sinc resampler is polyphase: every block of o input samples gives n output samples
    (o/n = orig/new in lowest terms), each from a filter `width` samples wide. So blocks are filtered with
    `margin` samples of history before them and held back until `margin` samples of look-ahead have arrived;
    the output lags the input by `margin` samples (about 1 ms), and no chunk edge ever clicks.
    """

    def __init__(self, orig_rate: int, new_rate: int) -> None:
        gcd = math.gcd(orig_rate, new_rate)
        self.orig_rate, self.new_rate = orig_rate, new_rate
        self.o, self.n = orig_rate // gcd, new_rate // gcd
        # torchaudio's filter half-width in input samples (lowpass_filter_width 6, rolloff 0.99), plus one.
        width = math.ceil(6 * self.o / (0.99 * min(self.o, self.n))) + 1
        self.margin = math.ceil((width + self.o) / self.o) * self.o
        self.history = torch.zeros(0)
        self.pending = torch.zeros(0)

    def push(self, chunk: torch.Tensor) -> torch.Tensor:
        """Input samples (k,) → the output samples that are now final (about k·new/orig of them)."""
        if self.o == self.n:
            return chunk
        buffer = torch.cat([self.pending, chunk])
        usable = (buffer.shape[0] - self.margin) // self.o * self.o
        if usable <= 0:
            self.pending = buffer
            return torch.zeros(0)
        block = torch.cat([self.history, buffer[: usable + self.margin]])
        skip = self.history.shape[0] // self.o * self.n
        out = resample(block, self.orig_rate, self.new_rate)[skip : skip + usable // self.o * self.n]
        self.history = torch.cat([self.history, buffer[:usable]])[-self.margin :]
        self.pending = buffer[usable:]
        return out


@dataclass
class LiveSession:
    """Per-listener streaming state (kept in a gr.State between chunks)."""

    bundle: LoadedModel
    rate: int  # the rate the model sees
    mic_rate: int  # the rate the microphone chunks arrive at
    engine: str = "auto"  # asked for; `using` is what runs
    using: str = field(init=False)  # the engine that runs: "step" or "window"
    state: list = field(init=False)  # the model's recurrent state
    features: deque = field(init=False)  # emitted step features of the last window, each (1, H)
    audio: torch.Tensor = field(init=False)  # the last window of audio at `rate`
    heard: float = 0.0  # seconds of audio received
    busy: float = 0.0  # seconds spent computing
    step_rtf: float | None = None  # measured seconds of stepping per second of audio

    def __post_init__(self) -> None:
        if self.engine not in ENGINES:
            raise ValueError(f"unknown live engine {self.engine!r}; choose one of {', '.join(ENGINES)}")
        model = self.bundle.model
        self.dt_scale = dt_scale_for(self.bundle.meta, self.rate)
        self.window = window_samples(self.bundle, self.rate)
        pooling = math.prod(getattr(block, "pool", 1) for block in model.blocks)
        self.features = deque(maxlen=max(1, self.window // pooling))
        self.state = model.initial_state(1)
        self.audio = torch.zeros(0)
        self.resampler = StreamResampler(self.mic_rate, self.rate)
        self.using = "window" if self.engine == "window" else "step"

    def feed(self, mic_chunk: torch.Tensor) -> dict[str, float] | None:
        """A microphone chunk (k,) → probabilities over the last second heard (None before any output)."""
        start = time.perf_counter()
        chunk = self.resampler.push(mic_chunk)
        self.audio = torch.cat([self.audio, chunk])[-self.window :]
        if self.using == "step":
            self._step_through(chunk)
        if self.using == "window":
            logits = self._window_logits()
        else:
            logits = self._step_logits()
        self.busy += time.perf_counter() - start
        self.heard += chunk.shape[0] / self.rate
        return None if logits is None else probabilities(logits, self.bundle.classes)

    def _step_through(self, chunk: torch.Tensor) -> None:
        probe = chunk.shape[0] if self.engine == "step" or self.step_rtf is not None else int(PROBE_SECONDS * self.rate)
        start = time.perf_counter()
        self._step(chunk[:probe])
        if self.step_rtf is None and probe:
            self.step_rtf = (time.perf_counter() - start) / (probe / self.rate)
            if self.engine == "auto" and self.step_rtf > 1:
                log.info("step view runs at %.1fx real time: live mode falls back to windowed forward", self.step_rtf)
                self.using = "window"
                return
        self._step(chunk[probe:])

    def _step(self, samples: torch.Tensor) -> None:
        model = self.bundle.model
        with torch.inference_mode(), one_thread():
            features, self.state = model.step_chunk(samples.view(1, -1), self.state, self.dt_scale)
        self.features.extend(features.unbind(1))

    def _step_logits(self) -> torch.Tensor | None:
        if not self.features:
            return None
        with torch.inference_mode():
            return self.bundle.model.head(torch.cat(list(self.features)).mean(0, keepdim=True))[0]

    def _window_logits(self) -> torch.Tensor:
        clip = pad_or_trim(self.audio, self.window)[None]
        with torch.inference_mode(), one_thread():
            return predict_logits(self.bundle.model, self.bundle.meta, clip, self.rate)[0].float()

    def status(self) -> str:
        """One line: engine, rate, dt_scale and the measured real-time factor."""
        rtf = self.busy / self.heard if self.heard else 0.0
        engine = "recurrent step view" if self.using == "step" else "forward on the last second (fallback)"
        text = f"Live: {engine} at {self.rate} Hz, dt_scale {self.dt_scale:.3g}; {self.heard:.1f} s heard, "
        text += f"compute {rtf:.2f}x real time"
        if self.step_rtf is not None:
            text += f" (stepping measured at {self.step_rtf:.1f}x real time)"
        return text + "."


def live_unavailable(bundle: LoadedModel) -> str:
    """Why live mode cannot run this model (only causal S4 models have a recurrent step view)."""
    if bundle.kind == "cnn":
        return "Live mode needs a causal S4 model: a CNN has no recurrent step view."
    return "Live mode needs a causal S4 model: a bidirectional S4 layer sees the future and has no step view."


def live_step(
    bundle: LoadedModel | None,
    chunk: tuple[int, np.ndarray] | None,
    session: LiveSession | None,
    rate_choice: str | None = "16000",
    engine: str = "auto",
) -> tuple[dict[str, float] | None, str, LiveSession | None]:
    """One streamed microphone chunk (rate, samples) → (probabilities, status markdown, session)."""
    if bundle is None:
        return None, "⚠️ No model is loaded.", None
    if not bundle.causal:
        return None, f"⚠️ {live_unavailable(bundle)}", None
    if chunk is None:
        return None, "Press Record to start listening.", session
    native_rate, samples = chunk
    try:
        wave = to_mono_float32(samples, native_rate, name="microphone chunk")
        if session is None or session.mic_rate != int(native_rate):
            session = LiveSession(bundle, parse_rate(rate_choice, int(native_rate)), int(native_rate), engine)
        label = session.feed(wave)
    except (AudioError, ValueError) as error:
        log.warning("live chunk rejected: %s", error)
        return None, f"⚠️ {error}", session
    except Exception as error:  # keep the stream alive and say why, rather than a bare "Error" badge
        log.exception("live mode failed")
        return None, f"⚠️ Live mode failed: {error}", None
    if rms_dbfs(session.audio) < SILENCE_DBFS:
        return None, session.status() + "  \nListening… (silence so far)", session
    return label, session.status(), session
