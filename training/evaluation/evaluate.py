"""Accuracy of exported models at several sampling rates, with per-class reports and confusion matrices.

    python -m training.evaluate --model runs/cpu-small/model.safetensors --data data/sc10-synth \
        --rates 16000 8000 --json eval.json --out eval/ [--no-rescale] [--compare runs/cnn-small/model.safetensors]

Clips are read at the model's training rate and converted to each rate by `training.serving.inference.prepare`
(resample, or --downsample decimate); an S4 model then runs with dt_scale = training rate / rate.
--no-rescale adds, for every rate other than the training rate, an entry "<rate>-no-rescale" in which the
same input runs with dt_scale = 1. Clips of speakers the model was trained or validated on (its JSON's
data.heard_speakers) are never scored: one warning line counts them, and the JSON's "excluded" holds the count.
Per rate the JSON holds accuracy, n_clips (scored), labels, per_class and confusion (rows = true, columns =
predicted, in `labels` order); a model with _silence_ and _unknown_ classes adds "commands" (accuracy, rejected)
and "non_commands" (rejected). With several models (--model A B or --compare B) a side-by-side table
and a bar chart (comparison.png) are produced; the JSON then also holds a "compare" list of the others.
With more than two --rates and --out, OUT/<first model's stem>-rate-sweep.png (+ .json) plots accuracy against
the input rate for every model (S4 with Δ rescaled and, with --no-rescale, unchanged; a 12-class model's
"commands" accuracy), with the chance line. A rate whose clip is too short for a model (the M5 CNN needs 6,848
samples) is left out of that model's report with a warning, and listed in its "skipped_rates".
--snr-db DB mixes every clip but the silence clips with background noise at DB dB SNR: the split's own part of
the folder's `_background_noise_` recordings (never heard in training), the same stretch for a given clip in
every model and at every rate, before the clip is converted to each rate; the JSON's "data" records "snr_db".
"""

from __future__ import annotations

import argparse
import json
import logging
import os
from collections.abc import Collection, Sequence
from pathlib import Path

import numpy as np
import torch
from sklearn.metrics import classification_report, confusion_matrix
from torch import nn
from torch.utils.data import Dataset, Subset

from training.common.cli import USER_ERRORS, report_error, require_data_folder
from training.data.augment import WithNoise, load_noises
from training.data.clip_index import SILENCE, describe_data
from training.data.speech_commands import NOISE_FOLDER, SC10_CLASSES, SC12_CLASSES, UNKNOWN, SpeechCommands
from training.evaluation.plots import comparison_png, confusion_png, rate_sweep_png
from training.evaluation.report import (
    balanced_accuracy,
    per_class_accuracy,
    print_results,
    print_table,
    wilson_interval,
)
from training.serving.export import load_model
from training.serving.inference import DOWNSAMPLE, dataset_logits, dt_scale_used, predict_logits

log = logging.getLogger(__name__)
SPEAKER_MARK = "_nohash_"  # "<speakerhash>_nohash_<n>.wav": the dataset's own way of naming a clip's speaker
REJECT = (SILENCE, UNKNOWN)  # the two classes that say "not a command"


def speaker_of(path: str | os.PathLike) -> str | None:
    """A clip's speaker: ".../yes/0a7c2a8d_nohash_1.wav" → "0a7c2a8d"; None without one (silence, noise cuts)."""
    name = Path(path).name
    return name.split(SPEAKER_MARK)[0] if SPEAKER_MARK in name else None


def heard_speakers(datasets: Sequence[SpeechCommands]) -> list[str]:
    """Sorted speaker hashes of every clip in `datasets` (a model's training and validation splits)."""
    return sorted({speaker for d in datasets for speaker in map(speaker_of, d.paths) if speaker is not None})


def heard_clips(meta: dict, dataset: SpeechCommands) -> list[int]:
    """Indices of the clips in `dataset` whose speaker is in the model's meta["data"]["heard_speakers"]."""
    heard = set(meta.get("data", {}).get("heard_speakers", ()))
    return [i for i, path in enumerate(dataset.paths) if heard and speaker_of(path) in heard]


def rate_variants(meta: dict, rates: Sequence[int], no_rescale: bool) -> list[tuple[str, int, bool]]:
    """(JSON key, rate, rescale) per evaluation: each rate rescaled, plus "<rate>-no-rescale" if asked."""
    variants = [(str(rate), rate, True) for rate in rates]
    if no_rescale:
        variants += [(f"{rate}-no-rescale", rate, False) for rate in rates if rate != meta["sample_rate"]]
    return variants


def _fraction(hits: np.ndarray) -> float:
    return float(hits.mean()) if len(hits) else 0.0


def rate_report(labels: np.ndarray, predictions: np.ndarray, classes: Sequence[str], dt_scale: float) -> dict:
    """Accuracy, per-class accuracy and precision/recall/F1 (sklearn), balanced accuracy and the confusion matrix of
    one evaluation, with 95% intervals (`training.evaluation.report`).

    labels, predictions (n,) class indices. "confusion"[true][predicted] counts clips, both in "labels" order.
    "per_class_accuracy": {class: accuracy, correct, n_clips, interval}; "balanced_accuracy": their mean over the
    classes with clips; "intervals": Wilson intervals of "accuracy" and of the keyword figures below.
    Models with `_silence_` and `_unknown_` also get "commands" and "non_commands" (see `keyword_report`).
    No clips (all left out by the leak guard) give zeros, not an error.
    """
    indices = list(range(len(classes)))
    report = {name: {"precision": 0.0, "recall": 0.0, "f1-score": 0.0, "support": 0} for name in classes}
    confusion = [[0] * len(classes) for _ in classes]
    if len(labels):  # sklearn refuses empty input
        report = classification_report(
            labels, predictions, labels=indices, target_names=list(classes), output_dict=True, zero_division=0
        )
        confusion = confusion_matrix(labels, predictions, labels=indices).tolist()
    result = {
        "accuracy": _fraction(labels == predictions),
        "dt_scale": dt_scale,
        "n_clips": len(labels),
        "labels": list(classes),
        "per_class": {name: report[name] for name in classes},
        "confusion": confusion,
    }
    per_class = per_class_accuracy(confusion, classes)
    result.update(per_class_accuracy=per_class, balanced_accuracy=balanced_accuracy(per_class))
    result["intervals"] = {"accuracy": wilson_interval(int((labels == predictions).sum()), len(labels))}
    if all(name in classes for name in REJECT):
        result.update(keyword_report(labels, predictions, classes))
        result["intervals"].update(_keyword_intervals(result))
    return result


def _keyword_intervals(result: dict) -> dict:
    """Wilson intervals of the "commands" and "non_commands" fractions of a rate report (each k / n exactly)."""

    def interval(fraction: float, n: int) -> tuple[float, float]:
        return wilson_interval(round(fraction * n), n)

    commands, others = result["commands"], result.get("non_commands")
    spans = {"commands": {key: interval(commands[key], commands["n_clips"]) for key in ("accuracy", "rejected")}}
    if others:
        spans["non_commands"] = {"rejected": interval(others["rejected"], others["n_clips"])}
    return spans


def keyword_report(labels: np.ndarray, predictions: np.ndarray, classes: Sequence[str]) -> dict:
    """Keyword spotting figures of a model with `_silence_` and `_unknown_` classes; labels, predictions (n,).

    "commands": clips of the words: "accuracy" (predicted as their word; "not a command" counts wrong) and
    "rejected" (predicted `_silence_` or `_unknown_`). "non_commands" (only when there are such clips): the
    fraction of `_silence_`/`_unknown_` clips "rejected", whichever of the two is predicted.
    """
    reject = [classes.index(name) for name in REJECT]
    command, rejected = ~np.isin(labels, reject), np.isin(predictions, reject)
    report = {
        "commands": {
            "accuracy": _fraction(labels[command] == predictions[command]),
            "rejected": _fraction(rejected[command]),
            "n_clips": int(command.sum()),
        }
    }
    if (~command).any():
        report["non_commands"] = {"rejected": _fraction(rejected[~command]), "n_clips": int((~command).sum())}
    return report


def unusable_rates(model: nn.Module, meta: dict, rates: Sequence[int]) -> dict[int, str]:
    """{rate: why} for the rates whose clip `model` cannot take: one forward pass on a silent clip per rate.

    An M5 CNN needs 6,848 samples (four max-pools of 4): a 1 s clip at 4 kHz is too short for it. Such a rate is
    left out of that model's report (with a warning) instead of ending the whole evaluation.
    """
    unusable = {}
    clip = meta.get("clip_samples", meta["sample_rate"])
    for rate in sorted(set(rates)):
        silence = torch.zeros(1, round(clip * rate / meta["sample_rate"]))
        try:
            predict_logits(model.eval(), meta, silence, rate)
        except RuntimeError as error:  # what torch raises for an input too short for a layer
            unusable[rate] = f"{silence.shape[-1]} samples: " + " ".join(str(error).split())
    return unusable


def evaluate_model(
    model: nn.Module,
    meta: dict,
    dataset: SpeechCommands,
    rates: Sequence[int],
    downsample: str = "resample",
    no_rescale: bool = False,
    batch_size: int = 64,
    heard: Collection[int] | None = None,
    snr_db: float | None = None,
) -> dict[str, dict]:
    """Run `model` on the clips of `dataset` (at the model's training rate) at each rate → {key: rate_report}.

    Leak guard: clips of speakers the model heard in training or validation are not scored; one warning line
    gives their number, and each report's "n_clips" counts only the clips scored. `heard`: those clips'
    indices when the caller already has them from `heard_clips` (None: found here). `snr_db`: mix the split's
    own background noise into every clip but the silence clips at that SNR (`noisy`); None: the clips as they are.
    """
    if tuple(dataset.classes) != tuple(meta["classes"]):
        raise ValueError(f"the model's classes {list(meta['classes'])} differ from the data's {list(dataset.classes)}")
    heard = set(heard_clips(meta, dataset) if heard is None else heard)
    scored: Dataset = dataset if snr_db is None else noisy(dataset, snr_db)
    if heard:
        log.warning(
            "warning: %d clips of speakers this model was trained or validated on are excluded from scoring", len(heard)
        )
        scored = Subset(scored, [i for i in range(len(dataset)) if i not in heard])
    variants = rate_variants(meta, rates, no_rescale)
    truth, logits = dataset_logits(model, meta, scored, variants, downsample, batch_size)
    results = {}
    for key, rate, rescale in variants:
        predicted = logits[key].argmax(-1)
        results[key] = rate_report(truth, predicted, meta["classes"], dt_scale_used(meta, rate, rescale))
    return results


def noisy(dataset: SpeechCommands, snr_db: float) -> WithNoise:
    """`dataset` with its split's part of the folder's background-noise recordings mixed in at `snr_db` dB SNR
    (silence clips unchanged); a folder without them is a ValueError."""
    folder = dataset.root / NOISE_FOLDER
    noises = load_noises(folder, dataset.sample_rate, dataset.split) if folder.is_dir() else []
    if not noises:
        raise ValueError(f"cannot mix noise at {snr_db:g} dB SNR: {folder} holds no noise recordings for this split")
    keep = [dataset.classes.index(SILENCE)] if SILENCE in dataset.classes else []
    return WithNoise(dataset, noises, snr_db, dataset.sample_rate, keep)


# "<model stem>-rate-sweep.png" (+ .json): next to an exported model, the app's model card shows the PNG.
SWEEP_SUFFIX = "-rate-sweep"
COMMANDS_METRIC = "commands accuracy: clips of the command words only; silence / unknown answers count wrong"


def _sweep_value(result: dict) -> tuple[float, int]:
    """(accuracy, clips) of one rate report: a 12-class model's "commands" figures, so that it is scored on
    the same clips, the command words, as a 10-class model beside it."""
    scored = result.get("commands", result)
    return scored["accuracy"], scored["n_clips"]


def rate_sweep(evaluated: Sequence[tuple[str, dict, dict]], rates: Sequence[int], title: str) -> dict:
    """Accuracy vs input rate: (name, meta, evaluate_model results) per model → the sweep document.

    Curves: every model with Δ rescaled (a CNN has no Δ: one curve), and an S4 model with Δ unchanged when
    results hold "<rate>-no-rescale" entries (at the training rate both runs are the same one).
    {"title", "metric", "rates", "curves": [{"label", "model", "kind", "rescaled", "n_classes", "train_rate",
    "n_clips", "accuracy": {"<rate>": accuracy}}]}; "rescaled" is None for a CNN; an accuracy is None where the model
    could not run (see `unusable_rates`).
    """
    curves = []
    for name, meta, results in evaluated:
        kind, train_rate = meta["model"], meta["sample_rate"]
        variants = [("", True)] if kind == "s4" else [("", None)]
        if kind == "s4" and any(key.endswith("-no-rescale") for key in results):
            variants.append(("-no-rescale", False))
        for suffix, rescaled in variants:
            # Δ unchanged at the training rate is the rescaled run; a rate the model could not take stays None.
            keys = {rate: str(rate) if rate == train_rate else f"{rate}{suffix}" for rate in rates}
            values = {str(r): _sweep_value(results[key])[0] if key in results else None for r, key in keys.items()}
            how = {True: "Δ rescaled (dt_scale = training rate / rate)", False: "Δ unchanged", None: "no Δ"}[rescaled]
            curves.append(
                {
                    "label": f"{name}, {how}",
                    "model": name,
                    "kind": kind,
                    "rescaled": rescaled,
                    "n_classes": len(meta["classes"]),
                    "train_rate": train_rate,
                    "n_clips": max((_sweep_value(result)[1] for result in results.values()), default=0),
                    "accuracy": values,
                }
            )
    commands = any("commands" in result for _, _, results in evaluated for result in results.values())
    metric = COMMANDS_METRIC if commands else "accuracy"
    return {"title": title, "metric": metric, "rates": sorted(set(rates)), "curves": curves}


def _model_name(path: Path, meta: dict) -> str:
    return f"{meta['model']}:{path.parent.name}/{path.stem}"


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python -m training.evaluate",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
        epilog="Errors end with one line on stderr and exit status 2.",
    )
    parser.add_argument("--model", nargs="+", required=True, type=Path, help="exported model(s): .safetensors or .json")
    parser.add_argument("--compare", nargs="+", default=[], type=Path, help="more models for the side-by-side table")
    parser.add_argument("--data", required=True, type=Path, help="a folder in the Speech Commands layout")
    parser.add_argument("--rates", nargs="+", type=int, default=[16000, 8000], help="sampling rates in Hz")
    parser.add_argument("--split", default="test", choices=("train", "val", "test"), help="default: test")
    parser.add_argument(
        "--subset", choices=("sc10", "sc12", "sc35"), help="default: the subset the model was trained on"
    )
    parser.add_argument(
        "--protocol",
        choices=("official", "s4-paper"),
        help="split rule; default: the model's own when --data is its training folder, else official (the lists)",
    )
    parser.add_argument("--downsample", choices=DOWNSAMPLE, default="resample", help="how lower rates are made")
    parser.add_argument("--no-rescale", action="store_true", help="also run lower rates with dt_scale 1")
    parser.add_argument(
        "--snr-db", type=float, help="mix in the split's own background noise at this SNR (silence clips excepted)"
    )
    parser.add_argument("--batch-size", type=int, default=64)
    parser.add_argument("--json", type=Path, help="write the results here")
    parser.add_argument("--out", type=Path, help="write confusion matrices, comparison.png and the rate sweep here")
    return parser


def subset_of(classes: Sequence[str]) -> str:
    """The subset ("sc10", "sc12" or "sc35") whose classes these are; any other word list reads as sc35's."""
    return {SC10_CLASSES: "sc10", SC12_CLASSES: "sc12"}.get(tuple(classes), "sc35")


def _dataset_for(meta: dict, args: argparse.Namespace) -> SpeechCommands:
    trained_on = meta.get("data", {})
    # Exports name their data folders only (older ones held a full path): a name decides "the model's own folder".
    folders = trained_on.get("folders") or [trained_on]
    same_root = args.data.resolve().name in {Path(folder.get("root", "")).name for folder in folders} - {""}
    protocol = args.protocol or (trained_on.get("protocol", "official") if same_root else "official")
    subset = args.subset or trained_on.get("subset") or subset_of(meta["classes"])
    return SpeechCommands(args.data, subset, args.split, sample_rate=meta["sample_rate"], protocol=protocol)


def _write_confusions(out: Path, path: Path, name: str, meta: dict, results: dict[str, dict]) -> None:
    """One confusion-matrix PNG and JSON per rate key, named "<folder>-<stem>-confusion-<key>"."""
    out.mkdir(parents=True, exist_ok=True)
    for key, result in results.items():
        stem = out / f"{path.parent.name}-{path.stem}-confusion-{key}"
        title = f"{name} at {key} Hz (dt_scale {result['dt_scale']:g}), accuracy {result['accuracy']:.3f}"
        confusion_png(result["confusion"], meta["classes"], stem.with_suffix(".png"), title)
        stem.with_suffix(".json").write_text(json.dumps({"classes": meta["classes"], **result}, indent=1))


def _data_title(args: argparse.Namespace) -> str:
    kind = "SYNTHETIC" if describe_data(args.data)["synthetic"] else "real"
    noise = "" if args.snr_db is None else f", noise at {args.snr_db:g} dB SNR"
    return f"{args.data.name} ({kind} data), {args.split} split{noise}"


def run(args: argparse.Namespace) -> dict:
    """Evaluate every model; print reports, write PNG/JSON outputs; returns the JSON document."""
    require_data_folder(args.data)
    if any(rate <= 0 for rate in args.rates):
        raise ValueError(f"sampling rates must be positive, got {args.rates}")
    entries, table, evaluated = [], {}, []
    for path in [*args.model, *args.compare]:
        model, meta = load_model(path)
        dataset = _dataset_for(meta, args)
        name = _model_name(path, meta)
        skipped = unusable_rates(model, meta, args.rates)
        for rate, why in skipped.items():
            log.warning("warning: %s cannot take %d Hz input (%s): that rate is left out", name, rate, why)
        rates = [rate for rate in args.rates if rate not in skipped]
        heard = heard_clips(meta, dataset)
        results = evaluate_model(
            model, meta, dataset, rates, args.downsample, args.no_rescale, args.batch_size, heard, args.snr_db
        )
        print_results(name, results, meta["classes"])
        data = {**describe_data(args.data), "split": args.split, "subset": subset_of(dataset.classes)}
        data["snr_db"] = args.snr_db
        data["n_clips"] = len(dataset)
        model_info = {"path": str(path), "kind": meta["model"], "sample_rate": meta["sample_rate"]}
        trained_on = dict(meta.get("data", {}))
        if "heard_speakers" in trained_on:  # the list itself (hundreds of hashes) stays in the model's JSON
            trained_on["n_heard_speakers"] = len(trained_on.pop("heard_speakers"))
        model_info["trained_on"] = trained_on
        entries.append({"excluded": len(heard), "model": model_info, "data": data, "rates": results})
        if skipped:
            entries[-1]["skipped_rates"] = {str(rate): why for rate, why in skipped.items()}
        table[name] = {key: result["accuracy"] for key, result in results.items()}
        evaluated.append((name, meta, results))
        if args.out:
            _write_confusions(args.out, path, name, meta, results)
    if len(table) > 1:
        print_table(table)
        if args.out:
            comparison_png(table, args.out / "comparison.png", _data_title(args))
    if args.out and len(args.rates) > 2:  # two rates are the paper's 1x/0.5x bars; more make a curve
        sweep = rate_sweep(evaluated, args.rates, f"{_data_title(args)}: accuracy vs input sampling rate")
        stem = args.out / f"{args.model[0].stem}{SWEEP_SUFFIX}"
        rate_sweep_png(sweep, stem.with_suffix(".png"))
        stem.with_suffix(".json").write_text(json.dumps(sweep, indent=1) + "\n")
        print(f"rate sweep: {stem.with_suffix('.png')} and .json")
    document = dict(entries[0])
    if len(entries) > 1:
        document["compare"] = entries[1:]
    if args.json:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(json.dumps(document, indent=1) + "\n")
    return document


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        with torch.no_grad():
            run(args)
    except USER_ERRORS as error:
        return report_error(error)
    return 0
