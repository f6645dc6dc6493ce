"""Live mode: classify microphone audio as it streams in, and list the commands heard.

Each chunk is resampled to the model's rate (seamlessly: `StreamResampler`) and goes two ways:

- the **list** (`app.live.Listener`): a voice-activity gate cuts the stream into utterances, and each one is
  classified once, with `forward` on a one-second window centred on it. The same word gets the same answer
  wherever it falls in the stream; silence and "not a command" never enter the list.
- the **label**, updated while someone speaks, by one of two engines:
  - "step": the recurrent view of a causal S4 model, `model.step_chunk`: the state carried from the last chunk
    plus this chunk's samples, O(N) per sample and channel (exactly what `model.step` gives sample by sample,
    without Python's per-sample overhead). The features of the last second are averaged and sent through
    `model.head`, which is what `forward` does for a one-second clip. The state is reset when an utterance
    ends: training clips start from a zero state, and a carried state turned a repeated word into others.
  - "window": `forward` on the last second of audio, at most every LABEL_HOP_SECONDS of audio heard. It is
    the only engine for a model without a step view (bidirectional S4, CNN), and the "auto" fallback when
    stepping is slower than real time.
  When nobody speaks, the label holds the answer for the last utterance.
The status line says which engine runs and why, and the measured real-time factor; it warns when the server falls
behind the microphone (a busy machine). The page's recordings stop being heard after TIME_LIMIT_SECONDS of audio.
"""

from __future__ import annotations

import logging
import math
import threading
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field

import numpy as np
import torch

from app.bundle import LoadedModel, one_thread, parse_rate, probabilities, top, window_samples
from app.live import MIN_CONFIDENCE, Listener
from training.serving import AudioError, dt_scale_used, pad_or_trim, predict_logits, resample, to_mono_float32

log = logging.getLogger(__name__)

ENGINES = ("auto", "step", "window")
TIME_LIMIT_SECONDS = 30.0  # audio one recording on the page may stream: a forgotten microphone does not run for ever
BEHIND_SECONDS = 3.0  # the server this far behind the microphone: the page says that words will come late
PROBE_SECONDS = 0.05  # audio stepped to measure the step view's speed before "auto" commits to it
LABEL_HOP_SECONDS = 0.25  # the window engine's label: one forward per this much audio, not per 0.1 s chunk


class StreamResampler:
    """Resample a stream chunk by chunk exactly as `training.serving.resample` would resample it whole.

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


def available_engines(bundle: LoadedModel | None) -> tuple[str, ...]:
    """The engines live mode can run for `bundle`: all of ENGINES with a recurrent step view, else the window one."""
    return ENGINES if bundle is not None and bundle.causal else ("window",)


@dataclass
class LiveSession:
    """Per-listener streaming state (kept in a gr.State between chunks)."""

    bundle: LoadedModel
    rate: int  # the rate the model sees
    mic_rate: int  # the rate the microphone chunks arrive at
    engine: str = "auto"  # asked for; `using` is what runs
    min_confidence: float = MIN_CONFIDENCE  # below it a command stays off the list
    using: str = field(init=False)  # the engine that runs: "step" or "window"
    why: str = field(init=False)  # why that engine runs
    label: dict[str, float] | None = field(init=False, default=None)  # what the live label shows
    heard: float = 0.0  # seconds of audio received
    busy: float = 0.0  # seconds spent computing
    step_rtf: float | None = None  # seconds of stepping per second of audio: measured, or given (tests, benchmarks)
    clock: Callable[[], float] = time.monotonic  # wall clock, to tell when the server falls behind the microphone
    time_limit: float | None = None  # seconds of audio heard, after which chunks are ignored (None: no limit)

    def __post_init__(self) -> None:
        if self.engine not in ENGINES:
            raise ValueError(f"unknown live engine {self.engine!r}; choose one of {', '.join(ENGINES)}")
        self.dt_scale = dt_scale_used(self.bundle.meta, self.rate, rescale=True)  # for the whole stream
        self.window = window_samples(self.bundle, self.rate)
        self.audio = torch.zeros(0)  # the last window of audio at `rate`
        self.resampler = StreamResampler(self.mic_rate, self.rate)
        self.listener = Listener(
            self.rate, self.window, self._probabilities, not self.bundle.rejects, self.min_confidence
        )
        self.lock = threading.Lock()  # the stream and the stop event may call in on two threads
        self.since_label = math.inf  # samples since the window engine's last label
        self.first_chunk_at: float | None = None
        missing = self.bundle.step_view_missing
        if self.engine == "window" or missing is not None:
            self.using = "window"
            self.why = missing or "chosen"
        else:
            self.using, self.why = "step", "the model is causal"
            self._reset_step()
            if self.step_rtf is not None:
                self._choose_engine()

    @property
    def over_time(self) -> bool:
        """Whether this recording has streamed its `time_limit`: later chunks are not heard."""
        return self.time_limit is not None and self.heard >= self.time_limit

    @property
    def behind(self) -> float:
        """Seconds the server is behind the microphone: wall time since the first chunk minus the audio heard.
        (One chunk's worth is normal: it is processed when it has arrived.)"""
        return 0.0 if self.first_chunk_at is None else self.clock() - self.first_chunk_at - self.heard

    def _choose_engine(self) -> None:
        """ "auto" with the step view's speed known: stepping slower than real time falls back to windows."""
        if self.engine == "auto" and self.step_rtf > 1:
            log.info("step view runs at %.1fx real time: live mode falls back to windowed forward", self.step_rtf)
            self.using = "window"
            self.why = f"fallback: stepping measured at {self.step_rtf:.1f}x real time"

    def feed(self, mic_chunk: torch.Tensor) -> dict[str, float] | None:
        """A microphone chunk (k,) → what the live label shows now (None before anyone has spoken)."""
        with self.lock:
            if self.over_time:
                return self.label
            if self.first_chunk_at is None:
                self.first_chunk_at = self.clock() - mic_chunk.shape[0] / self.mic_rate  # it took that long to record
            start = time.perf_counter()
            chunk = self.resampler.push(mic_chunk)
            self.audio = torch.cat([self.audio, chunk])[-self.window :]
            if self.using == "step":
                self._step_through(chunk)
            self._update(chunk)
            self.busy += time.perf_counter() - start
            self.heard += chunk.shape[0] / self.rate
            return self.label

    def finish(self) -> dict[str, float] | None:
        """The stream stopped: classify the utterances still waiting for the rest of their window."""
        with self.lock:
            self.listener.finish()
            if self.listener.last is not None:
                self.label = self.listener.last[1]
            return self.label

    def _update(self, chunk: torch.Tensor) -> None:
        """After a chunk: a classified utterance sets the label; while someone speaks, the engine updates it."""
        closed, classified = self.listener.closed, self.listener.last
        self.listener.push(chunk)
        if self.using == "step" and self.listener.closed != closed:
            # Reset after the whole chunk was stepped: a word starting in the same chunk loses its first part
            # in the label only (at most one chunk); the list does not use the step view.
            self._reset_step()
        if self.listener.last is not classified:
            self.label = self.listener.last[1]
        elif self.listener.gate.is_open:
            self.label = self._engine_label(chunk.shape[0]) or self.label

    def _engine_label(self, new_samples: int) -> dict[str, float] | None:
        if self.using == "step":
            logits = self._step_logits()
            return None if logits is None else probabilities(logits, self.bundle.classes)
        self.since_label += new_samples
        if self.since_label < LABEL_HOP_SECONDS * self.rate:
            return None
        self.since_label = 0
        return self._probabilities(pad_or_trim(self.audio, self.window))

    def _probabilities(self, clip: torch.Tensor) -> dict[str, float]:
        """`forward` on one window (W,) at the model's rate, Δ rescaled by training.serving."""
        with torch.inference_mode(), one_thread():
            logits = predict_logits(self.bundle.model, self.bundle.meta, clip[None], self.rate, dt_scale=self.dt_scale)
            logits = logits[0].float()
        return probabilities(logits, self.bundle.classes)

    def _reset_step(self) -> None:
        model = self.bundle.model
        self.features: deque = deque(maxlen=max(1, self.window // model.pooling))  # step features, each (1, H)
        self.state = model.initial_state(1)

    def _step_through(self, chunk: torch.Tensor) -> None:
        probe = chunk.shape[0] if self.engine == "step" or self.step_rtf is not None else int(PROBE_SECONDS * self.rate)
        start = time.perf_counter()
        self._step(chunk[:probe])
        if self.step_rtf is None and probe:
            self.step_rtf = (time.perf_counter() - start) / (probe / self.rate)
            self._choose_engine()
            if self.using == "window":
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

    def status(self) -> str:
        """Markdown: engine and why, rate, dt_scale, the real-time factor; then what the listener hears."""
        rtf = self.busy / self.heard if self.heard else 0.0
        engine = "recurrent step view" if self.using == "step" else "window engine: forward on the last second"
        text = f"Live: {engine} ({self.why}) at {self.rate} Hz, dt_scale {self.dt_scale:.3g}; "
        limit = "" if self.time_limit is None else f" of {self.time_limit:.0f} s"
        text += f"{self.heard:.1f} s{limit} heard, compute {rtf:.2f}x real time"
        if self.step_rtf is not None and self.using == "step":
            text += f" (stepping measured at {self.step_rtf:.1f}x real time)"
        lines = [text + ".", self._hearing()]
        if rtf > 1 or self.behind > BEHIND_SECONDS:
            lines.append(
                f"⚠️ The server is busy and {max(self.behind, 0):.0f} s behind the microphone "
                f"(compute {rtf:.1f}x real time): words are listed late, or missed if it cannot catch up."
            )
        return "  \n".join(lines)

    def _hearing(self) -> str:
        if self.over_time:
            limit = f"{self.time_limit:.0f} s"
            return f"⚠️ Stopped listening after {limit}, the limit per recording: press Stop, then Record again."
        if self.listener.gate.is_open:
            return "Hearing something…"
        if self.listener.last is None:
            return "Listening… (silence so far)"
        utterance, label = self.listener.last
        word, p = top(label)
        return f"Listening… the last sound ({utterance.start / self.rate:.1f} s) was **{word}** ({p:.0%})."


def live_step(
    bundle: LoadedModel | None,
    chunk: tuple[int, np.ndarray] | None,
    session: LiveSession | None,
    rate_choice: str | None = "16000",
    engine: str = "auto",
) -> tuple[dict[str, float] | None, str, list[list], LiveSession | None]:
    """One streamed microphone chunk (rate, samples) → (label, status markdown, commands heard, session)."""
    if bundle is None:
        return None, "⚠️ No model is loaded.", [], None
    if chunk is None:
        return None, "Press Record to start listening.", _rows(session), session
    native_rate, samples = chunk
    try:
        wave = to_mono_float32(samples, native_rate, name="microphone chunk")
        if session is None or session.mic_rate != int(native_rate):
            rate = parse_rate(rate_choice, int(native_rate))
            session = LiveSession(bundle, rate, int(native_rate), engine, time_limit=TIME_LIMIT_SECONDS)
        label = session.feed(wave)
    except (AudioError, ValueError) as error:
        log.warning("live chunk rejected: %s", error)
        return None, f"⚠️ {error}", _rows(session), session
    except Exception as error:  # keep the stream alive and say why, rather than a bare "Error" badge
        log.exception("live mode failed")
        return None, f"⚠️ Live mode failed: {error}", _rows(session), None
    return label, session.status(), _rows(session), session


def live_finish(session: LiveSession | None) -> tuple[dict[str, float] | None, str, list[list], LiveSession | None]:
    """Recording stopped: classify what still waits → (label, status, commands heard, session)."""
    if session is None:
        return None, "", [], None
    label = session.finish()
    return label, session.status(), _rows(session), session


def _rows(session: LiveSession | None) -> list[list]:
    return session.listener.rows() if session is not None else []
