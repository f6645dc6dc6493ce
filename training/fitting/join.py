"""Join exported runs of one recipe, trained apart (other seeds), into one ensemble export.

    python -m training.join runs/a/model.safetensors runs/b/model.safetensors --out runs/ab/model.safetensors
    python -m training.calibrate --model runs/e2/model.safetensors --data DIR   # one offset for the ensemble
    python -m training.join runs/final-0/model.safetensors runs/final-1/model.safetensors --offset -0.45 --out ...

The result is what config `ensemble: n` trains in one command (`training.serving.ensemble`: the mean of the members'
logits), built from runs that already exist, so that a recipe's ensemble can be scored without training it again.
The runs must share the model kind, its options, the classes and the sampling rate. Each member's rejection
offset is undone: an ensemble's offset is chosen for the ensemble (`training.calibrate`), or, for members that
heard their validation speakers (a final fit, which nothing is left to calibrate), fixed with `--offset X`: the
one chosen for the recipe's validated ensemble, as config `calibration.offset` does. The leak guard's
"heard_speakers" is the union of the members' lists, and "joined_from" names each run, its seed and its offset.
The members' test metrics describe the members, so only the parameter count is kept; `--data` folders measure
the ensemble's own on their test speakers (at 16 and 8 kHz), as training and `training.calibrate` do.
"""

from __future__ import annotations

import argparse
import copy
import datetime
from collections.abc import Sequence
from pathlib import Path

from training.common.cli import USER_ERRORS, report_error, require_data_folders
from training.fitting.calibrate import measure_test, set_offset
from training.serving.ensemble import Ensemble
from training.serving.export import export_model, load_model

# What the members of one ensemble must agree on (the export keys load_model builds a member from).
SHARED = ("model", "model_kwargs", "sample_rate", "clip_samples", "classes")


def join(paths: Sequence[Path], offset: float | None = None) -> tuple[Ensemble, dict]:
    """Exported single models (n ≥ 2) → (their `Ensemble`, its export meta); the ensemble's rejection offset is
    `offset` (recorded as fixed, not chosen on it), or none."""
    if len(paths) < 2:
        raise ValueError(f"joining needs at least 2 exported models, got {len(paths)}")
    if len(set(map(Path.resolve, map(Path, paths)))) != len(paths):
        raise ValueError("the same exported model is named twice: an ensemble of one run with itself adds nothing")
    members, metas = [], []
    for path in paths:
        model, meta = load_model(path)
        if meta.get("ensemble", 1) != 1:
            raise ValueError(f"{path} is already an ensemble of {meta['ensemble']}: join single models")
        differing = [key for key in SHARED if metas and meta.get(key) != metas[0].get(key)]
        if differing:
            raise ValueError(f"{path} and {paths[0]} differ in {', '.join(differing)}: join runs of one recipe")
        set_offset(model, meta["classes"], 0.0, float(meta.get("calibration", {}).get("offset", 0.0)))
        members.append(model)
        metas.append(meta)
    ensemble = Ensemble(members)
    joined = copy.deepcopy(metas[0])
    joined.pop("calibration", None)
    joined["ensemble"] = len(members)
    joined["metrics"] = {"n_parameters": sum(p.numel() for p in ensemble.parameters())}
    joined["created"] = datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds")
    heard = sorted({speaker for meta in metas for speaker in meta.get("data", {}).get("heard_speakers", ())})
    if heard:
        joined["data"]["heard_speakers"] = heard
    if isinstance(joined.get("config"), dict):
        joined["config"]["ensemble"] = len(members)
    joined["joined_from"] = [
        {
            "path": str(path),
            "seed": (meta.get("config") or {}).get("seed"),
            "offset": float(meta.get("calibration", {}).get("offset", 0.0)),
        }
        for path, meta in zip(paths, metas, strict=True)
    ]
    if offset is not None:
        set_offset(ensemble, joined["classes"], offset)
        joined["calibration"] = {"offset": offset, "split": None}
    return ensemble, joined


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python -m training.join", description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("models", nargs="+", type=Path, help="exported single models (.safetensors or .json)")
    parser.add_argument("--out", required=True, type=Path, help="where to write the ensemble (.safetensors)")
    parser.add_argument(
        "--offset", type=float, help="a fixed rejection offset for a final fit's members (default: none)"
    )
    parser.add_argument("--data", type=Path, nargs="+", help="measure the ensemble's test metrics on these folders")
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        if args.data:
            require_data_folders(args.data)
        ensemble, meta = join(args.models, args.offset)
        if args.data:
            rates = (meta.get("config") or {}).get("test_rates", [16000, 8000])  # the recipe's, as training uses
            meta["metrics"].update(measure_test(ensemble, meta, args.data, rates))
        path = export_model(ensemble, meta, args.out)
    except USER_ERRORS as error:
        return report_error(error)
    then = "; calibrate it with python -m training.calibrate"
    if args.offset is not None:
        then = f", rejection offset {args.offset:+g} (fixed)"
    print(f"wrote {path}: an ensemble of {meta['ensemble']}{then}")
    return 0
