"""The model behind the app: load an export, name its classes for people, parse the rate the model sees.

Nothing here imports Gradio. `app.handlers` (files) and `app.streaming` (the microphone) build on it.
"""

from __future__ import annotations

import logging
import math
import re
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import torch
from torch import Tensor

from training.serving import load_model

log = logging.getLogger(__name__)

DEFAULT_MODEL = Path(__file__).parent / "default_model" / "s4-sc12-real.safetensors"
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

# The keyword-spotting classes of a 12-class model, named as the dataset names its folders (training.data's
# SILENCE and UNKNOWN; spelled out here so the app does not depend on the training data code). People see
# what they mean instead; everything else is a command.
SILENCE, UNKNOWN = "_silence_", "_unknown_"
DISPLAY_NAMES = {SILENCE: "silence", UNKNOWN: "not a command"}


def display_name(name: str) -> str:
    """A class name as the app shows it: "_silence_" → "silence", "_unknown_" → "not a command", words as is."""
    return DISPLAY_NAMES.get(name, name)


def is_command(label: str) -> bool:
    """Whether a shown label (or a class name) is one of the commands, not silence or "not a command"."""
    return label not in DISPLAY_NAMES and label not in DISPLAY_NAMES.values()


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
    def labels(self) -> list[str]:
        """The class names as shown (see `display_name`), in the order of the logits."""
        return [display_name(name) for name in self.classes]

    @property
    def rejects(self) -> bool:
        """Whether the model can answer "silence" or "not a command" (12 classes) instead of guessing a word."""
        return any(name in DISPLAY_NAMES for name in self.classes)

    @property
    def rescaled_ssms(self) -> list[torch.nn.Module]:
        """The SSMs whose Δ follows the input rate, in order (none for a CNN): `S4Classifier.rescaled_ssms`."""
        return self.model.rescaled_ssms() if self.kind == "s4" else []

    @property
    def causal(self) -> bool:
        """Whether the model has a recurrent `step` view (a causal S4 model)."""
        return self.step_view_missing is None

    @property
    def step_view_missing(self) -> str | None:
        """Why the model has no recurrent step view (None when it has one): live mode then runs windows."""
        if self.kind == "cnn":
            return "a CNN has no recurrent step view"
        if self.model.causal:
            return None
        if getattr(self.model, "frontend", None) is None:
            return "the model is bidirectional: it sees the future, so it has no recurrent step view"
        return "the model reads the waveform through a filterbank and sees the whole window: it has no step view"

    @property
    def rate_sweep_png(self) -> Path | None:
        """The "accuracy vs input sampling rate" figure beside the model file, if there is one: for
        `dir/name.safetensors`, `dir/name-rate-sweep.png`, the name `training.evaluate --rates ... --out DIR`
        gives it (with more than two rates) for the first --model.
        """
        png = self.path.with_name(self.path.stem + RATE_SWEEP_SUFFIX)
        return png if png.is_file() else None

    def describe(self) -> str:
        """The model card, Markdown: a table of what the model is, the data it learned from (with its provenance
        warning), its accuracy on held-out speakers per rate (from the export's metrics) and its size."""
        data, metrics = self.meta.get("data", {}), dict(self.meta.get("metrics") or {})
        n_parameters = metrics.pop("n_parameters", None) or sum(p.numel() for p in self.model.parameters())
        what = f"{_architecture(self.meta)}, {'causal' if self.causal else 'non-causal'}"
        rows = [
            ("Model", f"{what}, {n_parameters:,} parameters, trained at {_khz(self.train_rate)}"),
            ("Classes", _classes_text(self.classes)),
            ("Learned from", _data_text(data)),
        ]
        if data.get("provenance"):
            rows.append(("⚠️ Provenance", str(data["provenance"])))
        held_out = "held-out voices" if data.get("synthetic", True) else "held-out speakers"
        rows += _accuracy_rows(metrics, self.train_rate, self.kind, held_out, len(self.classes) if self.rejects else 0)
        if self.meta.get("calibration"):
            rows.append(("Rejection", _calibration_text(self.meta["calibration"])))
        weights = self.path.with_suffix(".safetensors")
        if weights.is_file():
            size = weights.stat().st_size
            rows.append(("Size", f"{size / 1e6:.1f} MB" if size >= 1e6 else f"{size / 1e3:.0f} kB"))
        lines = [f"| Model card | `{self.path.name}` |", "| --- | --- |"]
        lines += [f"| **{name}** | {text.replace('|', '/')} |" for name, text in rows]
        return "\n".join(lines)


# `training.evaluate` writes the rate sweep as "<model stem>-rate-sweep.png" (its SWEEP_SUFFIX); spelled out here so
# that the app does not import the evaluation code.
RATE_SWEEP_SUFFIX = "-rate-sweep.png"
# "test_acc_8000", "test_commands_acc_16000", "real_dev_acc_8000_no_rescale", "test_acc_8000-no-rescale"
ACCURACY_KEY = re.compile(r"^(?P<split>\w+?)_(?P<commands>commands_)?acc_(?P<rate>\d+)(?P<stale>[-_]no[-_]rescale)?$")
# "test_commands_rejected_16000", "test_non_commands_rejected_8000": what a 12-class model answers "not a command"
REJECTED_KEY = re.compile(r"^test_(?P<what>non_commands|commands)_rejected_(?P<rate>\d+)$")


def _khz(rate: int) -> str:
    return f"{rate / 1000:g} kHz"


def _architecture(meta: dict) -> str:
    """ "S4D, 4 layers × 128 channels", "CNN (M5, raw waveform)" or "ensemble of 2 × (S4D, ...)", from the
    export's model_kwargs and ensemble."""
    kwargs = meta.get("model_kwargs", {})
    if meta.get("model") == "cnn":
        text = "CNN (M5, raw waveform)"
    else:
        name = "S4D" if kwargs.get("mode") == "diag" else "S4"
        front = " after an S4D filterbank" if kwargs.get("frontend") else ""
        text = f"{name}, {kwargs.get('n_layers', '?')} layers × {kwargs.get('d_model', '?')} channels{front}"
    members = meta.get("ensemble", 1)
    return f"ensemble of {members} × ({text}), logits averaged" if members > 1 else text


def _classes_text(classes: list[str]) -> str:
    commands = [name for name in classes if is_command(name)]
    others = [display_name(name) for name in classes if not is_command(name)]
    return f"{len(classes)}: " + ", ".join(commands) + "".join(f", **{name}**" for name in others)


def _data_text(data: dict) -> str:
    """What the model learned from: synthetic or real, the folder's name and subset, and (synthetic) its note."""
    where = ", ".join(str(data[key]) for key in ("root", "subset") if data.get(key))
    if data.get("synthetic", True):  # unknown counts as synthetic: never pass generated speech off as real
        text = "**SYNTHETIC** speech" + (f" (`{where}`)" if where else "")
        return text + f": {data.get('description') or 'generated by text-to-speech voices'}"
    return "real speech recordings" + (f" (`{where}`)" if where else "")


def _calibration_text(record: dict) -> str:
    """The rejection offset (`training.calibrate`) in words: its size, the split and floor it was chosen for."""
    if record.get("split") is None:
        offset = record["offset"]
        return f"silence / not-a-command logits {offset:+.2f}, fixed by the training config (calibration.offset)"
    return (
        f"silence / not-a-command logits {record['offset']:+.2f}, chosen on the {record['split']} speakers to keep"
        f" the most commands while rejecting at least {record['min_non_commands_rejected']:.0%} of other words"
        " and silence"
    )


def _accuracy_rows(
    metrics: dict, train_rate: int, kind: str, held_out: str, n_keyword_classes: int
) -> list[tuple[str, str]]:
    """The export's accuracy metrics as rows: one per split ("test" first, named `held_out`) and kind of accuracy,
    rates from the highest down; a "<split>_note" joins its split's row; other metrics share one last row.
    n_keyword_classes: a 12-class model's class count (its plain accuracy covers silence and other words too), or 0.
    """
    groups: dict[tuple[str, bool], list[tuple[int, bool, float]]] = {}
    for key, value in metrics.items():
        match = ACCURACY_KEY.match(key)
        if match and isinstance(value, (int, float)):
            group = groups.setdefault((match["split"], bool(match["commands"])), [])
            group.append((int(match["rate"]), bool(match["stale"]), float(value)))
    notes = {f"{split}_note" for split, _ in groups}
    rows = []
    for (split, commands), values in sorted(groups.items(), key=lambda item: (item[0][0] != "test", item[0])):
        name = "Commands accuracy" if commands else "Accuracy"
        if n_keyword_classes and not commands:  # silence and other words are scored too
            name += f" (all {n_keyword_classes} classes)"
        name += f", {held_out if split == 'test' else split}"
        values.sort(key=lambda v: (v[1], -v[0]))  # rescaled runs first, each from the highest rate down
        text = " · ".join(
            f"{_rate_label(rate, stale, train_rate, kind)}: **{value:.1%}**" for rate, stale, value in values
        )
        if commands:
            text += " (the ten words only; answering silence or not a command counts wrong)"
        elif metrics.get(f"{split}_note"):
            text += f" ({metrics[f'{split}_note']})"
        rows.append((name.replace("_", " "), text))
    rows += _rejection_rows(metrics, held_out)
    rest = {k: v for k, v in metrics.items() if not (ACCURACY_KEY.match(k) or REJECTED_KEY.match(k)) and k not in notes}
    if rest:
        rows.append(("Other metrics", ", ".join(f"{k.replace('_', ' ')}: {v}" for k, v in rest.items())))
    return rows


def _rejection_rows(metrics: dict, held_out: str) -> list[tuple[str, str]]:
    """A 12-class model's rejection rates (rescaled runs), e.g. "commands: 16 kHz 5.3% · 8 kHz 5.3%"."""
    parts = {"commands": [], "non_commands": []}
    for key, value in sorted(metrics.items(), key=lambda item: item[0]):
        match = REJECTED_KEY.match(key)
        if match and isinstance(value, (int, float)):
            parts[match["what"]].append((int(match["rate"]), float(value)))
    texts = [
        f"{label} {' · '.join(f'{_khz(rate)} **{value:.1%}**' for rate, value in sorted(values, reverse=True))}"
        for label, values in (("commands:", parts["commands"]), ("other words and silence:", parts["non_commands"]))
        if values
    ]
    return [(f"Answered silence / not a command, {held_out}", "; ".join(texts))] if texts else []


def _rate_label(rate: int, stale: bool, train_rate: int, kind: str) -> str:
    """16000 → "16 kHz"; 8000 → "8 kHz (Δ·2)" for S4; with `stale` (dt_scale = 1) → "8 kHz, Δ unchanged"."""
    if stale:
        return f"{_khz(rate)}, Δ unchanged"
    if rate == train_rate or kind != "s4":
        return _khz(rate)
    return f"{_khz(rate)} (Δ·{train_rate / rate:.3g})"


def load_bundle(path: str | Path) -> LoadedModel:
    """Load an export (raises training.serving's `ModelFileError` for a file that is not one)."""
    path = Path(path)
    model, meta = load_model(path)
    model.eval()
    log.info("loaded %s model from %s", meta.get("model"), path)
    return LoadedModel(model, meta, path)


class RateError(ValueError):
    """A rate setting the model cannot use: the message names the setting, never the audio."""


def parse_rate(choice: str | int | float | None, native_rate: int) -> int:
    """A rate choice ("16000", "16k", "native", 8000, ...) → the rate in Hz the model will see.

    Raises RateError for text that is no number, a rate that is not a whole number of Hz (never rounded
    silently) or one outside MIN_MODEL_RATE..MAX_MODEL_RATE.
    """
    hint = f"choose one from the list, or type a whole number of Hz from {MIN_MODEL_RATE} to {MAX_MODEL_RATE}"
    native = choice is None or str(choice).strip().lower() in (NATIVE, "")
    if native:
        rate = native_rate
    else:
        text = str(choice).strip().lower().replace("hz", "").strip()
        try:
            value = float(text[:-1]) * 1000 if text.endswith("k") else float(text)
        except ValueError as error:
            raise RateError(f"The rate setting {str(choice)!r} is not a number of Hz: {hint}.") from error
        if not math.isfinite(value) or value != round(value):
            raise RateError(f"The rate setting {str(choice)!r} is not a whole number of Hz: {hint}.")
        rate = round(value)
    if not MIN_MODEL_RATE <= rate <= MAX_MODEL_RATE:
        what = "The file's own rate," if native else "The rate setting"
        raise RateError(f"{what} {rate} Hz is outside {MIN_MODEL_RATE}..{MAX_MODEL_RATE} Hz: {hint}.")
    return rate


def probabilities(logits: Tensor, classes: list[str]) -> dict[str, float]:
    """Logits (n_classes,) → {shown class name: probability}, the value a gr.Label shows."""
    probs = torch.softmax(logits.float(), dim=-1)
    return {display_name(name): float(p) for name, p in zip(classes, probs, strict=True)}


def top(label: dict[str, float]) -> tuple[str, float]:
    """The winning (name, probability) of a `probabilities` dict."""
    name = max(label, key=label.get)
    return name, label[name]


def window_samples(bundle: LoadedModel, rate: int) -> int:
    """The model's window (one clip, 1 s) in samples at `rate`."""
    return round(int(bundle.meta.get("clip_samples", bundle.train_rate)) * rate / bundle.train_rate)
