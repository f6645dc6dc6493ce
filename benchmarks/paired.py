"""Two models, clip by clip, on the same clips of one split: which clips only one of them gets right.

    python -m benchmarks.paired --model runs/v22/model.safetensors --against runs/v21/model.safetensors \
        --data ../shared/data/speech_commands_real [--split test] [--rates 16000 8000] [--json OUT]

Both models must have the same classes. Clips of a speaker that either model heard in training or validation are
left out (the leak guard of `training.evaluate`, over both models), so the two answer exactly the same clips. Per
rate (Δ rescaled at the lower ones): the clips each gets right, the clips only one gets right, and the exact
McNemar p-value (`training.evaluation.report.paired_comparison`), for all clips and, with silence and "not a
command" among the classes, for the command clips alone. Two overlapping intervals of a few points cannot tell
two models apart; the paired count can. Writes benchmarks/results/paired-<model's folder>-<date>.json, or --json.
"""

from __future__ import annotations

import argparse
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import torch
from torch.utils.data import Dataset, Subset

from benchmarks.common import machine, write_json
from training.common.cli import USER_ERRORS, report_error, require_data_folder
from training.data.speech_commands import SpeechCommands
from training.evaluation.evaluate import REJECT, heard_clips, rate_variants, subset_of
from training.evaluation.report import paired_comparison
from training.serving import load_model
from training.serving.inference import dataset_logits


def answers(model: torch.nn.Module, meta: dict, clips: Dataset, rates: Sequence[int]) -> tuple[np.ndarray, dict]:
    """Labels (n,) and {rate key: predicted class (n,)} of `model` on `clips`, Δ rescaled at each rate."""
    labels, logits = dataset_logits(model, meta, clips, rate_variants(meta, rates, no_rescale=False))
    return labels, {key: values.argmax(-1) for key, values in logits.items()}


def compare(model: Path, against: Path, data: Path, split: str, rates: Sequence[int]) -> dict:
    """{"n_excluded", "rates": {rate key: {"all": paired_comparison, "commands": ... (keyword spotters)}}}."""
    (first, meta), (other, other_meta) = load_model(model), load_model(against)
    classes = meta["classes"]
    if classes != other_meta["classes"] or meta["sample_rate"] != other_meta["sample_rate"]:
        raise ValueError(f"{model} and {against} differ in classes or sample rate: they cannot answer the same clips")
    dataset = SpeechCommands(data, subset_of(classes), split, sample_rate=meta["sample_rate"])
    skip = set(heard_clips(meta, dataset)) | set(heard_clips(other_meta, dataset))
    clips = Subset(dataset, [i for i in range(len(dataset)) if i not in skip])
    (labels, mine), (_, theirs) = answers(first, meta, clips, rates), answers(other, other_meta, clips, rates)
    keyword_spotter = all(name in classes for name in REJECT)
    commands = ~np.isin(labels, [classes.index(name) for name in REJECT]) if keyword_spotter else None
    results = {}
    for key in mine:
        right_a, right_b = mine[key] == labels, theirs[key] == labels
        results[key] = {"all": paired_comparison(right_a, right_b)}
        if commands is not None:
            results[key]["commands"] = paired_comparison(right_a[commands], right_b[commands])
    return {"n_excluded": len(skip), "rates": results}


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.paired", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)  # fmt: skip
    parser.add_argument("--model", type=Path, required=True, help="an exported model")
    parser.add_argument("--against", type=Path, required=True, help="the model to compare it with")
    parser.add_argument("--data", type=Path, required=True, help="a folder in the Speech Commands layout")
    parser.add_argument("--split", default="test", choices=("train", "validation", "test"), help="default: test")
    parser.add_argument("--rates", nargs="+", type=int, default=[16000, 8000], help="sampling rates in Hz")
    parser.add_argument("--json", type=Path, help="write the JSON here (default: benchmarks/results/...)")
    args = parser.parse_args(argv)
    try:
        require_data_folder(args.data)
        result = compare(args.model, args.against, args.data, args.split, args.rates)
    except USER_ERRORS as error:
        return report_error(error)
    print(f"{args.model} against {args.against}, {args.data.name} {args.split} split"
          f" ({result['n_excluded']} clips of speakers either heard left out)")  # fmt: skip
    for key, parts in result["rates"].items():
        for part, c in parts.items():
            print(f"  {key} Hz, {part:8s}: right {c['right'][0]} vs {c['right'][1]} of {c['n_clips']}; only the"
                  f" first {c['only_a']}, only the other {c['only_b']}; exact McNemar p = {c['p']:.3f}")  # fmt: skip
    payload = {"model": str(args.model), "against": str(args.against), "data": args.data.resolve().name,
               "split": args.split, **result, "machine": machine()}  # fmt: skip
    print(f"wrote {write_json(f'paired-{args.model.parent.name}', payload, args.json)}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
