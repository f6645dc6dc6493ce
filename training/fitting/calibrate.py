"""How readily a keyword spotter says "not a command", chosen on the validation speakers.

    python -m training.calibrate --model runs/sc12-real/model.safetensors --data ../shared/data/speech_commands_real
    python -m training.calibrate --model runs/e2/model.safetensors --data REAL EXTRA   # several folders together

A 12-class model rejects a clip when `_silence_` or `_unknown_` has its largest logit. One offset b added to both
rejection logits trades commands wrongly rejected against other words and noise let through. Calibration tries
every b in OFFSETS on the validation split at each rate, and keeps the b with the highest commands accuracy
(mean over the rates) among those that still reject at least `min_non_commands_rejected` of the non-command
clips at every rate; ties go to the b that rejects more of them, then to the b nearest 0. b is added to the
decoder's bias, so everything that runs the exported model (the app, live mode, `training.evaluate`) makes the
same decisions, and the model's JSON records it under "calibration": offset, floor, rates and the validation
figures before and after; the CLI measures the test metrics again. A calibrated model is first put back to
b = 0, so calibrating twice is calibrating once. `training.train` runs this after training when the config
sets `calibration.min_non_commands_rejected`.
"""

from __future__ import annotations

import argparse
import logging
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import torch
from torch import nn

from training.common.cli import USER_ERRORS, report_error, require_data_folders
from training.data.speech_commands import Folders, SpeechCommands, open_split
from training.evaluation.evaluate import REJECT, evaluate_model, keyword_report, rate_variants, subset_of
from training.serving.export import export_model, load_model, test_metrics
from training.serving.inference import dataset_logits

log = logging.getLogger(__name__)
OFFSETS = np.round(np.arange(-4.0, 4.0 + 1e-9, 0.05), 2)  # logit units; a step far below the logits' spread


def _reject_indices(classes: Sequence[str]) -> list[int]:
    missing = [name for name in REJECT if name not in classes]
    if missing:
        raise ValueError(f"calibration needs a model with the classes {', '.join(REJECT)}; this one lacks {missing}")
    return [list(classes).index(name) for name in REJECT]


def validation_clips(
    root: Path | Sequence[Path], subset: str, sample_rate: int, protocol: str
) -> SpeechCommands | Folders:
    """The validation split (of one folder, or of several together) to calibrate on; an error naming the
    folders if it holds no non-command clips."""
    roots = [root] if isinstance(root, (str, Path)) else list(root)
    validation = open_split(roots, subset, "validation", sample_rate, protocol)
    if not np.isin(validation.labels, _reject_indices(validation.classes)).any():
        names = " and ".join(str(path) for path in roots)
        raise ValueError(
            f"calibration needs other words or silence in the validation split of {names}; it has commands only"
            " (set calibration.min_non_commands_rejected: null to train without it)"
        )
    return validation


def require_unheard_validation(meta: dict, path: Path) -> None:
    """A ValueError when the model at `path` trained on the validation speakers too (a final fit): they can then
    neither choose its offset nor score its recipe."""
    if "validation" in meta.get("config", {}).get("data", {}).get("train_on", []):
        raise ValueError(
            f"{path} was trained on the validation speakers too (data.train_on), so they cannot judge it;"
            " use the run of the same recipe that held them out"
        )


def offset_figures(labels: np.ndarray, logits: dict[str, np.ndarray], classes: Sequence[str], offset: float) -> dict:
    """{run key: keyword_report} of the decisions made with `offset` added to the rejection logits (n, C)."""
    shift = np.zeros(len(classes), dtype=np.float32)
    shift[_reject_indices(classes)] = offset
    return {key: keyword_report(labels, (values + shift).argmax(-1), classes) for key, values in logits.items()}


def choose_offset(
    labels: np.ndarray, logits: dict[str, np.ndarray], classes: Sequence[str], min_non_commands_rejected: float
) -> float:
    """The offset in OFFSETS with the best mean commands accuracy that rejects enough non-commands at every run.

    labels (n,), logits {run key: (n, C)}. Ties: the most non-commands rejected, then the offset nearest 0.
    When no offset reaches the floor: the one that rejects the most.
    """
    if not np.isin(labels, _reject_indices(classes)).any():
        raise ValueError("calibration needs non-command clips (other words or silence) in the validation split")
    scored = []  # (meets the floor, commands accuracy, non-commands rejected, closeness to 0, offset)
    for offset in OFFSETS:
        figures = offset_figures(labels, logits, classes, float(offset)).values()
        rejected = [f["non_commands"]["rejected"] for f in figures]
        accuracy = float(np.mean([f["commands"]["accuracy"] for f in figures]))
        meets = min(rejected) >= min_non_commands_rejected
        scored.append((meets, accuracy, float(np.mean(rejected)), -abs(float(offset)), float(offset)))
    feasible = [entry for entry in scored if entry[0]]
    if feasible:
        return max(feasible, key=lambda entry: entry[1:4])[4]
    log.warning(
        "warning: no offset rejects %.0f%% of the non-commands; using the one that rejects the most",
        100 * min_non_commands_rejected,
    )
    return max(scored, key=lambda entry: (entry[2], entry[1], entry[3]))[4]


def set_offset(model: nn.Module, classes: Sequence[str], offset: float, previous: float = 0.0) -> None:
    """Make the rejection logits of `model` (its `decoder` layer, or each ensemble member's: their mean moves by
    as much) `offset` higher than they were at `previous`."""
    for member in getattr(model, "members", [model]):
        decoder = getattr(member, "decoder", None)
        if not isinstance(decoder, nn.Linear) or decoder.bias is None:
            raise ValueError(f"{type(member).__name__} has no decoder bias to carry a rejection offset")
        with torch.no_grad():
            decoder.bias[_reject_indices(classes)] += offset - previous


def calibrate(
    model: nn.Module,
    meta: dict,
    validation: SpeechCommands | Folders,
    rates: Sequence[int],
    min_non_commands_rejected: float,
    downsample: str = "resample",
) -> dict:
    """Choose the offset on `validation` at `rates`, apply it to `model` and return meta's "calibration" record.

    `meta` is the model's; its "calibration" offset, if any, is undone first.
    """
    if not 0.0 < min_non_commands_rejected <= 1.0:
        raise ValueError(f"min_non_commands_rejected must be in (0, 1], got {min_non_commands_rejected}")
    previous = float(meta.get("calibration", {}).get("offset", 0.0))
    set_offset(model, meta["classes"], 0.0, previous)
    runs = rate_variants(meta, rates, no_rescale=False)
    labels, logits = dataset_logits(model, meta, validation, runs, downsample)  # no gradients: predict_logits
    offset = choose_offset(labels, logits, meta["classes"], min_non_commands_rejected)
    set_offset(model, meta["classes"], offset)
    return {
        "offset": offset,
        "min_non_commands_rejected": min_non_commands_rejected,
        "split": validation.split,
        "rates": list(rates),
        "before": offset_figures(labels, logits, meta["classes"], 0.0),
        "after": offset_figures(labels, logits, meta["classes"], offset),
    }


def _change(before: dict, after: dict) -> str:
    """ "commands 0.9270 → 0.9340 (rejected ...), non-commands rejected ..." from two keyword reports."""
    pairs = [(report["commands"]["accuracy"], report["commands"]["rejected"]) for report in (before, after)]
    dropped = [report["non_commands"]["rejected"] for report in (before, after)]
    return (
        f"commands {pairs[0][0]:.4f} → {pairs[1][0]:.4f} (rejected {pairs[0][1]:.4f} → {pairs[1][1]:.4f}), "
        f"non-commands rejected {dropped[0]:.4f} → {dropped[1]:.4f}"
    )


def measure_test(model: nn.Module, meta: dict, roots: Sequence[Path], rates: Sequence[int]) -> dict[str, float]:
    """The export's test metrics (`test_metrics`) of `model` on the test speakers of every folder in `roots`."""
    protocol = meta.get("data", {}).get("protocol", "official")
    test = open_split(roots, subset_of(meta["classes"]), "test", meta["sample_rate"], protocol)
    return test_metrics(evaluate_model(model, meta, test, rates))


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python -m training.calibrate", description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--model", required=True, type=Path, help="exported 12-class model (.safetensors or .json)")
    trained_on = "the dataset folder(s) it was trained on: their validation splits together choose the offset"
    parser.add_argument("--data", required=True, type=Path, nargs="+", help=trained_on)
    floor = "the fraction of the validation split's non-commands to reject, at every rate (default 0.85)"
    parser.add_argument("--min-non-commands-rejected", type=float, default=0.85, help=floor)
    parser.add_argument("--rates", type=int, nargs="+", default=[16000, 8000], help="rates to calibrate at")
    parser.add_argument("--out", type=Path, help="write the calibrated model here (default: replace --model)")
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    args = build_parser().parse_args(argv)
    try:
        require_data_folders(args.data)
        model, meta = load_model(args.model)
        require_unheard_validation(meta, args.model)
        protocol, subset = meta.get("data", {}).get("protocol", "official"), subset_of(meta["classes"])
        validation = validation_clips(args.data, subset, meta["sample_rate"], protocol)
        meta["calibration"] = calibrate(model, meta, validation, args.rates, args.min_non_commands_rejected)
        if isinstance(meta.get("config"), dict):  # the recipe that gives this model now includes the calibration
            meta["config"]["calibration"] = {"min_non_commands_rejected": args.min_non_commands_rejected}
        # The export's test metrics were measured before the offset: measure them again, as training does.
        meta.setdefault("metrics", {}).update(measure_test(model, meta, args.data, args.rates))
        path = export_model(model, meta, args.out or args.model.with_suffix(".safetensors"))
    except USER_ERRORS as error:
        return report_error(error)
    record = meta["calibration"]
    for key in record["after"]:
        print(f"{key} Hz, validation: " + _change(record["before"][key], record["after"][key]))
    print(f"rejection offset {record['offset']:+.2f} written to {path}")
    return 0
