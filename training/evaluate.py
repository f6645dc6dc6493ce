"""Accuracy of exported models at several sampling rates, with per-class reports and confusion matrices.

    python -m training.evaluate --model runs/cpu-small/model.safetensors --data data/sc10-synth \
        --rates 16000 8000 --json eval.json --out eval/ [--no-rescale] [--compare runs/cnn-small/model.safetensors]

Clips are read at the model's training rate and converted to each rate by `training.inference.prepare`
(resample, or --downsample decimate); an S4 model then runs with dt_scale = training rate / rate.
--no-rescale adds, for every rate other than the training rate, an entry "<rate>-no-rescale" in which the
same input runs with dt_scale = 1. With several models (--model A B or --compare B) a side-by-side table
and a bar chart (comparison.png) are produced; the JSON then also holds a "compare" list of the others.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import torch
from sklearn.metrics import classification_report, confusion_matrix
from torch import nn
from torch.utils.data import DataLoader

from training.data import SpeechCommands
from training.export import ModelFileError, load_model
from training.inference import DOWNSAMPLE, dt_scale_for, predict_logits, prepare
from training.plots import comparison_png, confusion_png


def describe_data(root: str | os.PathLike) -> dict:
    """{"root", "synthetic", "description"} of a dataset folder, from its manifest.json when it has one."""
    root = Path(root)
    manifest = root / "manifest.json"
    info = {"root": str(root), "synthetic": False, "description": "Speech Commands folder (no manifest.json)"}
    if manifest.is_file():
        try:
            data = json.loads(manifest.read_text())
            info["synthetic"] = bool(data.get("synthetic", False))
            info["description"] = str(data.get("description", info["description"]))
        except ValueError:
            pass  # an unreadable manifest leaves the cautious default
    return info


def rate_variants(meta: dict, rates: Sequence[int], no_rescale: bool) -> list[tuple[str, int, bool]]:
    """(JSON key, rate, rescale) per evaluation: each rate rescaled, plus "<rate>-no-rescale" if asked."""
    variants = [(str(rate), rate, True) for rate in rates]
    if no_rescale:
        variants += [(f"{rate}-no-rescale", rate, False) for rate in rates if rate != meta["sample_rate"]]
    return variants


def rate_report(labels: np.ndarray, predictions: np.ndarray, classes: Sequence[str], dt_scale: float) -> dict:
    """Accuracy, per-class precision/recall/F1 (sklearn) and the confusion matrix of one evaluation."""
    indices = list(range(len(classes)))
    report = classification_report(
        labels, predictions, labels=indices, target_names=list(classes), output_dict=True, zero_division=0
    )
    return {
        "accuracy": float((labels == predictions).mean()) if len(labels) else 0.0,
        "dt_scale": dt_scale,
        "n_clips": len(labels),
        "per_class": {name: report[name] for name in classes},
        "confusion": confusion_matrix(labels, predictions, labels=indices).tolist(),
    }


def evaluate_model(
    model: nn.Module,
    meta: dict,
    dataset: SpeechCommands,
    rates: Sequence[int],
    downsample: str = "resample",
    no_rescale: bool = False,
    batch_size: int = 64,
) -> dict[str, dict]:
    """Run `model` on every clip of `dataset` (at the model's training rate) at each rate → {key: rate_report}."""
    if tuple(dataset.classes) != tuple(meta["classes"]):
        raise ValueError(f"the model's classes {list(meta['classes'])} differ from the data's {list(dataset.classes)}")
    variants = rate_variants(meta, rates, no_rescale)
    predictions: dict[str, list[np.ndarray]] = {key: [] for key, _, _ in variants}
    labels = []
    model.eval()
    for waveform, label, _ in DataLoader(dataset, batch_size=batch_size, shuffle=False):
        labels.append(label.numpy())
        converted = {}  # one conversion per rate, shared by its rescaled and unrescaled runs
        for key, rate, rescale in variants:
            if rate not in converted:
                converted[rate] = prepare(waveform, meta["sample_rate"], rate, downsample)
            logits = predict_logits(model, meta, converted[rate], rate, rescale=rescale)
            predictions[key].append(logits.argmax(-1).cpu().numpy())
    truth = np.concatenate(labels) if labels else np.zeros(0, dtype=int)
    results = {}
    for key, rate, rescale in variants:
        predicted = np.concatenate(predictions[key]) if predictions[key] else np.zeros(0, dtype=int)
        dt_scale = dt_scale_for(meta, rate) if rescale and meta["model"] == "s4" else 1.0
        results[key] = rate_report(truth, predicted, meta["classes"], dt_scale)
    return results


def _model_name(path: Path, meta: dict) -> str:
    return f"{meta['model']}:{path.parent.name}/{path.stem}"


def _print_results(name: str, results: dict[str, dict], classes: Sequence[str]) -> None:
    print(f"== {name}")
    for key, result in results.items():
        scale, accuracy = result["dt_scale"], result["accuracy"]
        print(f"-- {key} Hz (dt_scale {scale:g}): accuracy {accuracy:.4f} on {result['n_clips']} clips")
        print(f"   {'class':10s} precision recall")
        for word in classes:
            row = result["per_class"][word]
            print(f"   {word:10s} {row['precision']:9.3f} {row['recall']:6.3f}")


def _print_table(table: dict[str, dict[str, float]]) -> None:
    columns = list(dict.fromkeys(c for row in table.values() for c in row))
    width = max(len(name) for name in table) + 2
    print("model".ljust(width) + "".join(f"{c:>18s}" for c in columns))
    for name, row in table.items():
        print(name.ljust(width) + "".join(f"{row.get(c, float('nan')):18.4f}" for c in columns))


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
    parser.add_argument("--subset", choices=("sc10", "sc35"), help="default: the subset the model was trained on")
    parser.add_argument(
        "--protocol",
        choices=("official", "s4-paper"),
        help="split rule; default: the model's own when --data is its training folder, else official (the lists)",
    )
    parser.add_argument("--downsample", choices=DOWNSAMPLE, default="resample", help="how lower rates are made")
    parser.add_argument("--no-rescale", action="store_true", help="also run lower rates with dt_scale 1")
    parser.add_argument("--batch-size", type=int, default=64)
    parser.add_argument("--json", type=Path, help="write the results here")
    parser.add_argument("--out", type=Path, help="write confusion-matrix PNGs/JSON (and comparison.png) here")
    return parser


def dataset_subset(dataset: SpeechCommands) -> str:
    return "sc10" if len(dataset.classes) == 10 else "sc35"


def _dataset_for(meta: dict, args: argparse.Namespace) -> SpeechCommands:
    trained_on = meta.get("data", {})
    same_root = Path(trained_on.get("root", "")).resolve() == args.data.resolve()
    protocol = args.protocol or (trained_on.get("protocol", "official") if same_root else "official")
    subset = args.subset or trained_on.get("subset") or ("sc10" if len(meta["classes"]) == 10 else "sc35")
    return SpeechCommands(args.data, subset, args.split, sample_rate=meta["sample_rate"], protocol=protocol)


def run(args: argparse.Namespace) -> dict:
    """Evaluate every model; print reports, write PNG/JSON outputs; returns the JSON document."""
    if not args.data.is_dir():
        raise FileNotFoundError(f"data folder {args.data} does not exist")
    if any(rate <= 0 for rate in args.rates):
        raise ValueError(f"sampling rates must be positive, got {args.rates}")
    entries, table = [], {}
    for path in [*args.model, *args.compare]:
        model, meta = load_model(path)
        dataset = _dataset_for(meta, args)
        results = evaluate_model(model, meta, dataset, args.rates, args.downsample, args.no_rescale, args.batch_size)
        name = _model_name(path, meta)
        _print_results(name, results, meta["classes"])
        data = {**describe_data(args.data), "split": args.split, "subset": dataset_subset(dataset)}
        data["n_clips"] = len(dataset)
        model_info = {"path": str(path), "kind": meta["model"], "sample_rate": meta["sample_rate"]}
        model_info["trained_on"] = meta.get("data", {})
        entries.append({"model": model_info, "data": data, "rates": results})
        table[name] = {key: result["accuracy"] for key, result in results.items()}
        if args.out:
            args.out.mkdir(parents=True, exist_ok=True)
            for key, result in results.items():
                stem = args.out / f"{path.parent.name}-{path.stem}-confusion-{key}"
                title = f"{name} at {key} Hz (dt_scale {result['dt_scale']:g}), accuracy {result['accuracy']:.3f}"
                confusion_png(result["confusion"], meta["classes"], stem.with_suffix(".png"), title)
                stem.with_suffix(".json").write_text(json.dumps({"classes": meta["classes"], **result}, indent=1))
    if len(table) > 1:
        _print_table(table)
        if args.out:
            kind = "SYNTHETIC" if describe_data(args.data)["synthetic"] else "real"
            title = f"{args.data.name} ({kind} data), {args.split} split"
            comparison_png(table, args.out / "comparison.png", title)
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
    except (ModelFileError, FileNotFoundError, ValueError, OSError) as error:
        print("error: " + " ".join(str(error).split()), file=sys.stderr)  # one line, even for multi-line errors
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
