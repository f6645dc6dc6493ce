"""Plain-Python handlers behind the app: classify an audio file at a chosen sampling rate, scan long ones.

Nothing here imports Gradio: `app.ui` wires these functions to components, and the tests call them directly.
Predictions go through `training.serving.predict_logits`, so the app says what `training.evaluate` says.
"""

from __future__ import annotations

import logging
import math
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch
from matplotlib.figure import Figure
from torch import Tensor

from app import plots
from app.bundle import (
    LoadedModel,
    display_name,
    is_command,
    one_thread,
    parse_rate,
    probabilities,
    top,
    window_samples,
)
from training.serving import AudioError, dt_scale_used, load_audio_with_rate, pad_or_trim, predict_logits, prepare

log = logging.getLogger(__name__)

MAX_SECONDS = 60.0  # longer clips: only the first minute is analysed (a 10-minute file would take minutes)
HOP_SECONDS = 0.25  # sliding-window hop for clips longer than the model's window
WINDOW_BATCH = 16  # windows per forward call: bounds the FFT buffers of long clips
SILENCE_DBFS = -60.0  # RMS below this is treated as silence: no word to classify
SPEECH_RELATIVE_RMS = 0.25  # windows this quiet relative to the loudest one hold no word
NOISE_FLATNESS = 0.1  # even the most tonal frames of white/pink noise stay above this; speech frames fall below


def rms_dbfs(wave: Tensor) -> float:
    """Root-mean-square level in dB relative to full scale (−inf for digital silence)."""
    rms = float(wave.double().pow(2).mean().sqrt())
    return 20 * math.log10(rms) if rms > 0 else -math.inf


def spectral_flatness(wave: Tensor, frame: int = 512) -> float:
    """The 10th percentile over frames of the spectral flatness (geometric / arithmetic mean of the power).

    Voiced speech has tonal frames (flatness ≪ 0.1); white or pink noise has none. Only frames with energy count.
    """
    x = wave.double().numpy()
    if x.shape[0] < frame:
        x = np.pad(x, (0, frame - x.shape[0]))
    frames = np.lib.stride_tricks.sliding_window_view(x, frame)[:: frame // 2] * np.hanning(frame)
    power = np.abs(np.fft.rfft(frames, axis=-1)) ** 2 + 1e-20
    energy = power.mean(-1)
    loud = energy > energy.max() * 1e-3
    flatness = np.exp(np.log(power[loud]).mean(-1)) / power[loud].mean(-1)
    return float(np.percentile(flatness, 10))


@dataclass
class Segment:
    """A stretch of the clip where one word was heard (sliding-window scan)."""

    start: float  # seconds
    end: float
    word: str
    probability: float


@dataclass
class Classification:
    """Everything the UI shows for one clip. `label` is None when there is nothing to classify."""

    label: dict[str, float] | None = None
    label_raw: dict[str, float] | None = None  # same input with dt_scale = 1 (no re-discretisation)
    segments: list[Segment] = field(default_factory=list)
    status: str = ""
    notices: list[str] = field(default_factory=list)  # problems worth a pop-up warning
    waveform: Figure | None = None
    spectrogram: Figure | None = None
    kernels: Figure | None = None
    rate: int | None = None
    dt_scale: float | None = None

    def timeline(self) -> list[list]:
        """Rows for a table: start s, end s, word, probability."""
        return [[round(s.start, 2), round(s.end, 2), s.word, round(s.probability, 3)] for s in self.segments]


def classify(
    bundle: LoadedModel | None, audio_path: str | None, rate_choice: str | None = "16000", compare: bool = False
) -> Classification:
    """Classify an audio file as the model hears it at the chosen rate; never raises for bad input."""
    if bundle is None:
        return _problem("No model is loaded: start the app with `python -m app --model FILE`.")
    if not audio_path:
        return _problem("No audio yet: upload a file or record one with the microphone, then press Classify.")
    try:
        wave, native_rate = load_audio_with_rate(audio_path)
        rate = parse_rate(rate_choice, native_rate)
    except (AudioError, ValueError) as error:
        log.warning("rejected input %s: %s", audio_path, error)
        # The server's copy of an upload sits in a temporary folder: name the file as the user knows it.
        return _problem(f"Cannot use this audio: {str(error).replace(str(audio_path), Path(audio_path).name)}")
    try:
        return _classify_wave(bundle, wave, native_rate, rate, compare)
    except Exception as error:  # a crash here would only show as a red "Error"; say what happened instead
        log.exception("classification failed for %s", audio_path)
        return _problem(f"Classification failed: {error}")


def _problem(message: str) -> Classification:
    return Classification(status=f"⚠️ {message}", notices=[message])


def _classify_wave(bundle: LoadedModel, wave: Tensor, native_rate: int, rate: int, compare: bool) -> Classification:
    result = Classification(rate=rate)
    limit = int(MAX_SECONDS * native_rate)
    if wave.shape[0] > limit:
        seconds = wave.shape[0] / native_rate
        result.notices.append(
            f"The clip lasts {seconds:.0f} s: only its first {MAX_SECONDS:.0f} s are analysed "
            f"(the limit keeps the server responsive)."
        )
        wave = wave[:limit]
    result.spectrogram = plots.spectrogram_figure(wave, native_rate)
    result.dt_scale = scale = dt_scale_used(bundle.meta, rate, rescale=True)  # decided here, passed down
    result.kernels = kernel_figure(bundle, rate, scale)
    level = rms_dbfs(wave)
    if level < SILENCE_DBFS:
        message = f"The clip is silent (level {level:.0f} dBFS): there is no word to classify."
        result.notices.append(message)
        result.status = f"⚠️ {message}"
        result.waveform = plots.waveform_figure(wave, native_rate)
        return result
    model_wave = prepare(wave, native_rate, rate, "resample")
    windows, starts = sliding_windows(model_wave, window_samples(bundle, rate), round(HOP_SECONDS * rate))
    logits = _logits(bundle, windows, rate, scale)
    best, speech = _speech_windows(windows, logits, bundle.classes)
    result.label = probabilities(logits[best], bundle.classes)
    result.notices += _noise_notice(bundle, wave, result.label)
    if compare and bundle.kind == "s4":
        result.label_raw = probabilities(_logits(bundle, windows[best : best + 1], rate, 1.0)[0], bundle.classes)
    length = windows.shape[-1] / rate
    if len(starts) > 1:
        result.segments = merge_segments(
            [(starts[i] / rate, starts[i] / rate + length, logits[i]) for i in speech], bundle.classes
        )
    result.waveform = plots.waveform_figure(wave, native_rate, result.segments)
    result.status = _status(bundle, wave, native_rate, rate, scale, compare, result)
    return result


def sliding_windows(wave: Tensor, window: int, hop: int) -> tuple[Tensor, list[int]]:
    """(L,) → windows (W, window) and their start samples. A short clip is zero-padded to one window; the
    last window of a long clip ends at the clip's end, so no tail goes unheard.
    """
    if wave.shape[0] <= window:
        return pad_or_trim(wave, window)[None], [0]
    starts = list(range(0, wave.shape[0] - window + 1, max(1, hop)))
    if starts[-1] + window < wave.shape[0]:
        starts.append(wave.shape[0] - window)
    return torch.stack([wave[s : s + window] for s in starts]), starts


def _logits(bundle: LoadedModel, windows: Tensor, rate: int, dt_scale: float) -> Tensor:
    with torch.inference_mode(), one_thread():
        parts = [
            predict_logits(bundle.model, bundle.meta, windows[i : i + WINDOW_BATCH], rate, dt_scale=dt_scale)
            for i in range(0, windows.shape[0], WINDOW_BATCH)
        ]
    return torch.cat(parts).float()


def _noise_notice(bundle: LoadedModel, wave: Tensor, label: dict[str, float]) -> list[str]:
    """A warning when a flat-spectrum clip (noise) got a command: a 10-class model has no other answer, and a
    12-class one that says "silence" needs no warning.
    """
    word = top(label)[0]
    if spectral_flatness(wave) <= NOISE_FLATNESS or not is_command(word):
        return []
    if bundle.rejects:
        return [f"This sounds like noise rather than speech (a flat spectrum throughout), yet the model hears "
                f"'{word}': the answer means little."]  # fmt: skip
    return [
        "This sounds like noise rather than speech (a flat spectrum throughout): "
        "the model still picks one of its words, but the answer means little."
    ]


def _speech_windows(windows: Tensor, logits: Tensor, classes: list[str]) -> tuple[int, list[int]]:
    """The windows loud enough to hold a word, and among them the most confident one (the headline answer).

    Windows that hear a command come first: in a long recording of one command amid talk or noise, the
    headline is the command, not the most confident "not a command".
    """
    rms = windows.pow(2).mean(-1).sqrt()
    speech = [i for i in range(len(rms)) if rms[i] >= SPEECH_RELATIVE_RMS * rms.max()]
    confidence, winner = torch.softmax(logits, -1).max(-1)
    commands = [i for i in speech if is_command(classes[int(winner[i])])]
    best = max(commands or speech, key=lambda i: float(confidence[i]))
    return best, speech


def merge_segments(scored: list[tuple[float, float, Tensor]], classes: list[str]) -> list[Segment]:
    """Per-window (start, end, logits) → segments of commands, consecutive windows with the same top word merged.

    Windows whose winner is silence or "not a command" mark nothing and end the segment before them: the
    timeline shows only where commands were heard.
    """
    segments: list[Segment] = []
    open_segment = False
    for start, end, logits in scored:
        probs = torch.softmax(logits, -1)
        p, word = float(probs.max()), display_name(classes[int(probs.argmax())])
        if not is_command(word):
            open_segment = False
            continue
        last = segments[-1] if segments else None
        if open_segment and last.word == word and start <= last.end:
            last.end, last.probability = end, max(last.probability, p)
        else:
            segments.append(Segment(start, end, word, p))
            open_segment = True
    return segments


def delta_table(bundle: LoadedModel, rate: int, dt_scale: float, compare: bool) -> str:
    """Markdown table: the range over channels (all rescaled SSMs) of the step Δ·dt_scale, and the SSM time unit
    1/(Δ·dt_scale) in samples and in ms. Re-discretising keeps the time unit in ms fixed across rates.
    """
    if not bundle.rescaled_ssms:
        return "A CNN has no SSM step size Δ: it sees the resampled waveform as is."
    dt = bundle.model.step_sizes()
    rows = [("trained", bundle.train_rate, 1.0), ("re-discretised", rate, dt_scale)]
    if compare:
        rows.append(("not re-discretised", rate, 1.0))
    lines = [
        "| view | rate | dt_scale | Δ·dt_scale | SSM time unit (samples) | SSM time unit (ms) |",
        "|---|---|---|---|---|---|",
    ]
    for name, row_rate, scale in rows:
        lo, hi = float(dt.min() * scale), float(dt.max() * scale)
        lines.append(
            f"| {name} | {row_rate} Hz | {scale:.3g} | {lo:.3g} … {hi:.3g} | {1 / hi:.3g} … {1 / lo:.3g} "
            f"| {1000 / (hi * row_rate):.3g} … {1000 / (lo * row_rate):.3g} |"
        )
    return "\n".join(lines)


def _status(
    bundle: LoadedModel, wave: Tensor, native_rate: int, rate: int, scale: float, compare: bool, result: Classification
) -> str:
    seconds = wave.shape[0] / native_rate
    source = f"resampled from the file's {native_rate} Hz" if native_rate != rate else "the file's own rate"
    word = top(result.label)[0]
    verdict = f"Heard **{word}**" + ("" if is_command(word) else " (no command)")
    step = (
        f"**dt_scale = {bundle.train_rate}/{rate} = {scale:.3g}**" if bundle.kind == "s4" else "no Δ to rescale (CNN)"
    )
    lines = [f"{verdict} · {seconds:.2f} s of audio · the model sees **{rate} Hz** ({source}) with {step}."]
    if result.label_raw is not None:
        lines.append(f"Without re-discretising (dt_scale = 1) it hears **{top(result.label_raw)[0]}**.")
    if seconds > window_samples(bundle, rate) / rate:
        lines.append(f"Scanned with a {window_samples(bundle, rate) / rate:.0f} s window every {HOP_SECONDS} s.")
    lines += [f"⚠️ {notice}" for notice in result.notices]
    return "  \n".join(lines) + "\n\n" + delta_table(bundle, rate, scale, compare)


def kernel_figure(bundle: LoadedModel, rate: int, scale: float, channels: int = 4) -> Figure | None:
    """The first rescaled SSM's kernels at `rate` (Δ·scale) over the ones at the training rate, vs time in ms."""
    if not bundle.rescaled_ssms:
        return None
    ssm = bundle.rescaled_ssms[0]
    train_rate = bundle.train_rate
    length = window_samples(bundle, train_rate)
    with torch.inference_mode(), one_thread():
        k_train = ssm.kernel(length, 1.0).float()
        k_rate = ssm.kernel(window_samples(bundle, rate), scale).float()
    # Channels spread over the range of Δ: fast and slow ones (a bidirectional layer's backward ones included).
    order = torch.argsort(ssm.dt().detach().flatten())
    picks = order[torch.linspace(0, len(order) - 1, channels).round().long()].tolist()
    energy = k_train[picks].pow(2).cumsum(-1)
    reach = int((energy < 0.95 * energy[:, -1:]).sum(-1).max()) + 1  # where 95% of the energy has arrived
    span_ms = min(max(1000 * reach / train_rate, 5.0), 250.0)
    return plots.kernel_figure(k_train[picks].numpy(), train_rate, k_rate[picks].numpy(), rate, picks, span_ms, scale)
