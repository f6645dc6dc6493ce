"""Plain-Python handlers behind the app: load an exported model, classify a clip at a chosen sampling rate.

Nothing here imports Gradio: `app.ui` wires these functions to components, and the tests call them directly.
Predictions go through `training.inference.predict_logits`, so the app says what `training.evaluate` says.
"""

from __future__ import annotations

import logging
import math
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch
from matplotlib.figure import Figure
from torch import Tensor

from app import plots
from training.audio import AudioError, load_audio_with_rate, pad_or_trim
from training.export import load_model
from training.inference import dt_scale_for, predict_logits, prepare

log = logging.getLogger(__name__)

DEFAULT_MODEL = Path(__file__).parent / "default_model" / "s4-cpu-small.safetensors"
MAX_SECONDS = 60.0  # longer clips: only the first minute is analysed (a 10-minute file would take minutes)
HOP_SECONDS = 0.25  # sliding-window hop for clips longer than the model's window
WINDOW_BATCH = 16  # windows per forward call: bounds the FFT buffers of long clips
SILENCE_DBFS = -60.0  # RMS below this is treated as silence: no word to classify
SPEECH_RELATIVE_RMS = 0.25  # windows this quiet relative to the loudest one hold no word
NOISE_FLATNESS = 0.1  # even the most tonal frames of white/pink noise stay above this; speech frames fall below
NATIVE = "native"
RATE_CHOICES = [
    ("16 kHz (training rate, 1x)", "16000"),
    ("8 kHz (0.5x)", "8000"),
    ("4 kHz (0.25x)", "4000"),
    ("11.025 kHz", "11025"),
    ("22.05 kHz", "22050"),
    ("32 kHz (2x)", "32000"),
    ("44.1 kHz", "44100"),
    ("48 kHz (3x)", "48000"),
    ("the file's native rate", NATIVE),
]
MIN_MODEL_RATE, MAX_MODEL_RATE = 1000, 96000


@contextmanager
def one_thread() -> Iterator[None]:
    """Run the model on one intra-op thread. The app's tensors are small (a few windows, or one sample while
    stepping), and on a busy 2-core machine a second OpenMP thread costs far more than it saves: measured here,
    forward on one 1 s clip 13 ms with 1 thread vs 230-390 ms with 2, and GELU on 8 values 15 µs vs 6 ms.
    """
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        yield
    finally:
        torch.set_num_threads(threads)


@dataclass
class LoadedModel:
    """An exported model with its metadata, in eval mode, ready for the app."""

    model: torch.nn.Module
    meta: dict
    path: Path

    @property
    def kind(self) -> str:
        return str(self.meta.get("model", "s4"))

    @property
    def train_rate(self) -> int:
        return int(self.meta["sample_rate"])

    @property
    def classes(self) -> list[str]:
        return list(self.meta["classes"])

    @property
    def s4_layers(self) -> list[torch.nn.Module]:
        """The S4 layers in order (none for a CNN)."""
        return [block.s4 for block in getattr(self.model, "blocks", []) if hasattr(block, "s4")]

    @property
    def causal(self) -> bool:
        """Whether the model has a recurrent `step` view (a causal S4 model)."""
        return self.kind == "s4" and bool(self.s4_layers) and not any(s4.bidirectional for s4 in self.s4_layers)

    def describe(self) -> str:
        """Markdown: which model, what data it was trained on, and how accurate it is."""
        data = self.meta.get("data", {})
        synthetic = data.get("synthetic", True)
        source = "**SYNTHETIC** generated speech (text-to-speech voices)" if synthetic else "real speech recordings"
        lines = [
            f"**Model** `{self.path.name}`: {self.kind.upper()}, {'causal' if self.causal else 'non-causal'}, "
            f"trained at {self.train_rate} Hz on {source}.",
        ]
        if data.get("description"):
            lines.append(f"Data: {data['description']}")
        metrics = self.meta.get("metrics") or {}
        if metrics:
            lines.append("Accuracy (from its export): " + ", ".join(_format_metric(k, v) for k, v in metrics.items()))
        return "  \n".join(lines)


def _format_metric(name: str, value: object) -> str:
    """("test_acc_8000", 0.91) → "test accuracy 8000: 91.0%"; other metrics as they are."""
    if name.startswith("test_acc_") and isinstance(value, float):
        return f"test accuracy {name.removeprefix('test_acc_')}: {value:.1%}"
    return f"{name.replace('_', ' ')}: {value}"


def load_bundle(path: str | Path) -> LoadedModel:
    """Load an export (raises training.export's `ModelFileError` for a file that is not one)."""
    path = Path(path)
    model, meta = load_model(path)
    model.eval()
    log.info("loaded %s model from %s", meta.get("model"), path)
    return LoadedModel(model, meta, path)


def parse_rate(choice: str | int | float | None, native_rate: int) -> int:
    """A rate choice ("16000", "native", 8000, ...) → the rate in Hz the model will see."""
    if choice is None or str(choice).strip().lower() in (NATIVE, ""):
        rate = native_rate
    else:
        text = str(choice).strip().lower().replace("hz", "").strip()
        try:
            rate = round(float(text[:-1]) * 1000) if text.endswith("k") else round(float(text))
        except ValueError as error:
            raise ValueError(f"sampling rate {choice!r} is not a number of Hz") from error
    if not MIN_MODEL_RATE <= rate <= MAX_MODEL_RATE:
        raise ValueError(f"sampling rate {rate} Hz is outside {MIN_MODEL_RATE}..{MAX_MODEL_RATE} Hz")
    return rate


def probabilities(logits: Tensor, classes: list[str]) -> dict[str, float]:
    """Logits (n_classes,) → {class: probability}, the value a gr.Label shows."""
    probs = torch.softmax(logits.float(), dim=-1)
    return {name: float(p) for name, p in zip(classes, probs, strict=True)}


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
        return _problem(f"Cannot use this audio: {error}")
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
    result.kernels = kernel_figure(bundle, rate)
    level = rms_dbfs(wave)
    if level < SILENCE_DBFS:
        message = f"The clip is silent (level {level:.0f} dBFS): there is no word to classify."
        result.notices.append(message)
        result.status = f"⚠️ {message}"
        result.waveform = plots.waveform_figure(wave, native_rate)
        return result
    if spectral_flatness(wave) > NOISE_FLATNESS:
        result.notices.append(
            "This sounds like noise rather than speech (a flat spectrum throughout): "
            "the model still picks one of its words, but the answer means little."
        )

    model_wave = prepare(wave, native_rate, rate, "resample")
    windows, starts = sliding_windows(model_wave, window_samples(bundle, rate), round(HOP_SECONDS * rate))
    result.dt_scale = scale = dt_scale_for(bundle.meta, rate)
    logits = _logits(bundle, windows, rate, rescale=True)
    best, speech = _speech_windows(windows, logits)
    result.label = probabilities(logits[best], bundle.classes)
    if compare and bundle.kind == "s4":
        result.label_raw = probabilities(
            _logits(bundle, windows[best : best + 1], rate, rescale=False)[0], bundle.classes
        )
    length = windows.shape[-1] / rate
    if len(starts) > 1:
        result.segments = merge_segments(
            [(starts[i] / rate, starts[i] / rate + length, logits[i]) for i in speech], bundle.classes
        )
    result.waveform = plots.waveform_figure(wave, native_rate, result.segments)
    result.status = _status(bundle, wave, native_rate, rate, scale, compare, result)
    return result


def window_samples(bundle: LoadedModel, rate: int) -> int:
    """The model's window (one clip, 1 s) in samples at `rate`."""
    return round(int(bundle.meta.get("clip_samples", bundle.train_rate)) * rate / bundle.train_rate)


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


def _logits(bundle: LoadedModel, windows: Tensor, rate: int, rescale: bool) -> Tensor:
    with torch.inference_mode(), one_thread():
        parts = [
            predict_logits(bundle.model, bundle.meta, windows[i : i + WINDOW_BATCH], rate, rescale=rescale)
            for i in range(0, windows.shape[0], WINDOW_BATCH)
        ]
    return torch.cat(parts).float()


def _speech_windows(windows: Tensor, logits: Tensor) -> tuple[int, list[int]]:
    """The windows loud enough to hold a word, and among them the most confident one (the headline answer)."""
    rms = windows.pow(2).mean(-1).sqrt()
    speech = [i for i in range(len(rms)) if rms[i] >= SPEECH_RELATIVE_RMS * rms.max()]
    confidence = torch.softmax(logits, -1).max(-1).values
    best = max(speech, key=lambda i: float(confidence[i]))
    return best, speech


def merge_segments(scored: list[tuple[float, float, Tensor]], classes: list[str]) -> list[Segment]:
    """Per-window (start, end, logits) → segments, consecutive windows with the same top word merged."""
    segments: list[Segment] = []
    for start, end, logits in scored:
        probs = torch.softmax(logits, -1)
        p, index = float(probs.max()), int(probs.argmax())
        word = classes[index]
        last = segments[-1] if segments else None
        if last is not None and last.word == word and start <= last.end:
            last.end, last.probability = end, max(last.probability, p)
        else:
            segments.append(Segment(start, end, word, p))
    return segments


def delta_table(bundle: LoadedModel, rate: int, compare: bool) -> str:
    """Markdown table: the range over channels (all layers) of the step Δ·dt_scale, and the SSM time unit
    1/(Δ·dt_scale) in samples and in ms. Re-discretising keeps the time unit in ms fixed across rates.
    """
    if not bundle.s4_layers:
        return "A CNN has no SSM step size Δ: it sees the resampled waveform as is."
    log_dt = torch.cat([s4.ssm.log_dt.detach().flatten() for s4 in bundle.s4_layers])
    dt = log_dt.exp().double()
    rows = [("trained", bundle.train_rate, 1.0), ("re-discretised", rate, dt_scale_for(bundle.meta, rate))]
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
    lines = [
        f"Heard **{max(result.label, key=result.label.get)}** · {seconds:.2f} s of audio · the model sees "
        f"**{rate} Hz** ({source}) with **dt_scale = {bundle.train_rate}/{rate} = {scale:.3g}**.",
    ]
    if result.label_raw is not None:
        lines.append(
            f"Without re-discretising (dt_scale = 1) it hears **{max(result.label_raw, key=result.label_raw.get)}**."
        )
    if result.segments:
        lines.append(f"Scanned with a {window_samples(bundle, rate) / rate:.0f} s window every {HOP_SECONDS} s.")
    lines += [f"⚠️ {notice}" for notice in result.notices]
    return "  \n".join(lines) + "\n\n" + delta_table(bundle, rate, compare)


def kernel_figure(bundle: LoadedModel, rate: int, channels: int = 4) -> Figure | None:
    """The first S4 layer's kernels at `rate` (Δ·dt_scale) over the ones at the training rate, vs time in ms."""
    if not bundle.s4_layers:
        return None
    s4 = bundle.s4_layers[0]
    train_rate = bundle.train_rate
    scale = dt_scale_for(bundle.meta, rate)
    length = window_samples(bundle, train_rate)
    with torch.inference_mode(), one_thread():
        k_train = _forward_kernel(s4, length, 1.0)
        k_rate = _forward_kernel(s4, window_samples(bundle, rate), scale)
    # Channels spread over the range of Δ: fast and slow ones.
    order = torch.argsort(s4.ssm.log_dt.detach().flatten()[: k_train.shape[0]])
    picks = order[torch.linspace(0, len(order) - 1, channels).round().long()].tolist()
    energy = k_train[picks].pow(2).cumsum(-1)
    reach = int((energy < 0.95 * energy[:, -1:]).sum(-1).max()) + 1  # where 95% of the energy has arrived
    span_ms = min(max(1000 * reach / train_rate, 5.0), 250.0)
    return plots.kernel_figure(k_train[picks].numpy(), train_rate, k_rate[picks].numpy(), rate, picks, span_ms, scale)


def _forward_kernel(s4: torch.nn.Module, length: int, scale: float) -> Tensor:
    k = s4.kernel(length, scale)
    return (k[0] if s4.bidirectional else k).float()
