"""Plain-Python handlers behind the app: classify an audio file at a chosen sampling rate, find the words in long ones.

Nothing here imports Gradio: `app.ui` wires these functions to components, and the tests call them directly.
Predictions go through `training.serving.predict_logits`, so the app says what `training.evaluate` says; the
words of a long recording are found by live mode's word-finder (`app.live.find_words`), so a file and the
microphone give the same list.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from pathlib import Path

import torch
from matplotlib.figure import Figure
from torch import Tensor

from app import plots
from app.bundle import (
    LoadedModel,
    RateError,
    is_command,
    one_thread,
    parse_rate,
    probabilities,
    top,
    window_samples,
)
from app.inputs import NOISE_FLATNESS, SILENCE_DBFS, rms_dbfs, spectral_flatness, too_short, wav_shortfall
from app.live import MIN_CONFIDENCE, Heard, find_words, heard_rows, window_at
from training.serving import AudioError, dt_scale_used, load_audio_with_rate, pad_or_trim, predict_logits, prepare

log = logging.getLogger(__name__)

MAX_SECONDS = 60.0  # longer clips: only the first minute is analysed (a 10-minute file would take minutes)
FRAME_SECONDS = 0.02  # a recording in which the gate finds no word is heard where its loudest 20 ms frame is
READ_HINT = "Upload a WAV, FLAC, OGG or MP3 recording, or record one with the microphone."


@dataclass
class Classification:
    """Everything the UI shows for one clip. `label` is None when there is nothing to classify."""

    label: dict[str, float] | None = None
    label_raw: dict[str, float] | None = None  # same input with dt_scale = 1 (no re-discretisation)
    heard: list[Heard] = field(default_factory=list)  # the commands heard, in the order said
    status: str = ""
    notices: list[str] = field(default_factory=list)  # problems worth a pop-up warning
    waveform: Figure | None = None
    spectrogram: Figure | None = None
    kernels: Figure | None = None
    delta: str = ""  # the Δ table (Markdown)
    rate: int | None = None
    dt_scale: float | None = None

    def timeline(self) -> list[list]:
        """Rows for the "commands heard" table, in the order said: time (s), command, confidence."""
        return heard_rows(self.heard)


def classify(
    bundle: LoadedModel | None, audio_path: str | None, rate_choice: str | None = "16000", compare: bool = False
) -> Classification:
    """Classify an audio file as the model hears it at the chosen rate; never raises for bad input."""
    if bundle is None:
        return _problem("No model is loaded: start the app with `python -m app --model FILE`.")
    try:
        parse_rate(rate_choice, bundle.train_rate)  # the setting first: its message must not blame the audio
    except RateError as error:
        return _problem(str(error), pop_up=False)  # the rate control shows it already
    if not audio_path:
        return _problem("No audio yet: upload a file or record one with the microphone.")
    name = Path(audio_path).name  # the server's copy sits in a temporary folder: name the file as the user knows it
    try:
        wave, native_rate = load_audio_with_rate(audio_path)
    except AudioError as error:
        log.warning("rejected input %s: %s", audio_path, error)
        reason = str(error).replace(str(audio_path), name).removeprefix(f"{name}: ")
        return _problem(f"Cannot use {name}: {reason}. {READ_HINT}")
    short = too_short(wave.shape[0], native_rate)
    if short is not None:
        return _problem(short)
    try:
        rate = parse_rate(rate_choice, native_rate)
    except RateError as error:  # "native" and a file at a rate the model cannot use
        return _problem(str(error))
    try:
        result = _classify_wave(bundle, wave, native_rate, rate, compare)
    except Exception as error:  # a crash here would only show as a red "Error"; say what happened instead
        log.exception("classification failed for %s", audio_path)
        return _problem(f"Classification failed: {error}")
    cut = wav_shortfall(audio_path)
    if cut is not None:
        notice = (
            f"{name} is cut short: its header promises {cut[0]:.2f} s of audio but only {cut[1]:.2f} s are there "
            "(an interrupted download or copy?). The answer is for the part that is there."
        )
        result.notices.insert(0, notice)
        result.status += f"  \n⚠️ {notice}"
    return result


def _problem(message: str, pop_up: bool = True) -> Classification:
    return Classification(status=f"⚠️ {message}", notices=[message] if pop_up else [])


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
    result.delta = delta_table(bundle, rate, scale, compare)
    level = rms_dbfs(wave)
    if level < SILENCE_DBFS:
        message = f"The clip is silent (level {level:.0f} dBFS): there is no word to classify."
        result.notices.append(message)
        result.status = f"⚠️ {message}"
        result.waveform = plots.waveform_figure(wave, native_rate)
        return result
    model_wave = prepare(wave, native_rate, rate, "resample")
    clip, result.label, result.heard = _answer(bundle, model_wave, rate, scale)
    result.notices += _noise_notice(bundle, wave, result.label)
    if compare and bundle.kind == "s4":
        result.label_raw = probabilities(_logits(bundle, clip[None], rate, 1.0)[0], bundle.classes)
    marks = [(h.start, h.end, h.word) for h in result.heard]
    result.waveform = plots.waveform_figure(wave, native_rate, marks)
    result.status = _status(bundle, wave, native_rate, rate, scale, result)
    return result


def _answer(bundle: LoadedModel, wave: Tensor, rate: int, scale: float) -> tuple[Tensor, dict[str, float], list[Heard]]:
    """Model-rate audio (L,) → (the window the headline answer is for, that answer, the commands heard in order).

    A clip no longer than the model's window is classified whole, as training clips were. A longer one goes
    through the word-finder; the headline is its most confident command (in a recording of a command amid talk
    or noise, the command, not the most confident "not a command"), else its most confident utterance.
    """
    window = window_samples(bundle, rate)

    def label_of(clip: Tensor) -> dict[str, float]:
        return probabilities(_logits(bundle, clip[None], rate, scale)[0], bundle.classes)

    if wave.shape[0] <= window:
        clip = pad_or_trim(wave, window)
        label = label_of(clip)
        word, p = top(label)
        listed = is_command(word) and p >= MIN_CONFIDENCE
        return clip, label, [Heard(0.0, wave.shape[0] / rate, word, p)] if listed else []
    listener = find_words(wave, rate, window, label_of, check_noise=not bundle.rejects)
    if not listener.labelled:  # the gate found no word (one sound throughout): hear the loudest moment
        frame = round(FRAME_SECONDS * rate)
        energy = wave[: wave.shape[0] // frame * frame].view(-1, frame).pow(2).sum(-1)
        clip = window_at(wave, int(energy.argmax()) * frame + frame // 2 - window // 2, window)
        return clip, label_of(clip), []
    commands = [(u, label) for u, label in listener.labelled if is_command(top(label)[0])]
    utterance, label = max(commands or listener.labelled, key=lambda pair: top(pair[1])[1])
    return window_at(wave, utterance.centre - window // 2, window), label, listener.heard[::-1]


def _logits(bundle: LoadedModel, windows: Tensor, rate: int, dt_scale: float) -> Tensor:
    with torch.inference_mode(), one_thread():
        logits = predict_logits(bundle.model, bundle.meta, windows, rate, dt_scale=dt_scale)
    return logits.float()


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
    bundle: LoadedModel, wave: Tensor, native_rate: int, rate: int, scale: float, result: Classification
) -> str:
    """Markdown in plain words: what was heard, then how the model heard it (rate and Δ), then any warnings."""
    seconds = wave.shape[0] / native_rate
    word, p = top(result.label)
    verdict = f"Heard **{word}** ({p:.0%})" + ("" if is_command(word) else ": no command")
    if seconds > window_samples(bundle, rate) / rate:
        said = ", ".join(h.word for h in result.heard) or "none"
        verdict += f". Commands found in the recording, in order: {said} (table below)"
    source = f"resampled from the file's {native_rate} Hz" if native_rate != rate else "the file's own rate"
    lines = [verdict + ".", f"{seconds:.2f} s of audio, heard at **{rate} Hz** ({source}) {step_words(bundle, rate)}."]
    if result.label_raw is not None:
        lines.append(f"Without stretching Δ (dt_scale = 1) it hears **{top(result.label_raw)[0]}**.")
    lines += [f"⚠️ {notice}" for notice in result.notices]
    return "  \n".join(lines)


def step_words(bundle: LoadedModel, rate: int) -> str:
    """How the model's time step Δ follows `rate`, in words: "with Δ stretched ×2 (dt_scale = 16000/8000 = 2)"."""
    if bundle.kind != "s4":
        return "as is: no Δ to rescale (CNN)"
    scale = dt_scale_used(bundle.meta, rate, rescale=True)
    formula = f"dt_scale = {bundle.train_rate}/{rate} = {scale:.3g}"
    if scale == 1:
        return f"with Δ as trained ({formula})"
    change = f"stretched ×{scale:.3g}" if scale > 1 else f"shrunk to ×{scale:.3g}"
    return f"with its time step Δ {change} ({formula})"


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
