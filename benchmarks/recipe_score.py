"""Score a keyword-spotting recipe by the rule its runs are chosen by: balanced accuracy on the validation
speakers of every data folder, at 16 kHz and at 8 kHz.

    python -m benchmarks.recipe_score --model runs/sc12-val/model.safetensors --data REAL [EXTRA ...] [--json OUT]
    python -m benchmarks.recipe_score --model runs/v21/model.safetensors --data REAL EXTRA --against runs/v20/model.json

The model is the *validated* run of a recipe: trained without the validation speakers, which chose its rejection
offset (`training.calibrate`). Its JSON lists them as heard, so `training.evaluate` would leave them out; here
they are the point, and they are scored. A final fit (`data.train_on` holding validation) is refused.

The rule (fixed before the runs it judges, issue 34): on the validation clips of all --data folders together, the
accuracy of each of the 12 classes (ten commands, silence, "not a command"), their mean (balanced accuracy: a class
weighs the same however many clips it has), at 16 kHz and at 8 kHz with Δ doubled; the score is the mean of the
two. 95% intervals: Wilson for each class; for a balanced accuracy the normal approximation of a mean of K
independent proportions, ± z·√(Σ_c p̃_c(1 − p̃_c)/n_c)/K with p̃_c = (k_c + 2)/(n_c + 4)
(`training.evaluation.report.balanced_accuracy`); for the score the mean of the two rates' half-widths, since the same
clips are scored at both rates (errors taken as fully correlated: the widest case). `--against OTHER` adds a
paired comparison with another validated model on the same clips at each rate: the clips only one of them gets
right and the exact McNemar p-value (`training.evaluation.report.paired_comparison`), which sees a difference that
two overlapping intervals cannot. Writes benchmarks/results/recipe-score-<run folder>-<date>.json, or --json PATH.
"""

from __future__ import annotations

import argparse
from collections.abc import Sequence
from pathlib import Path

import numpy as np

from benchmarks.common import machine, write_json
from benchmarks.paired import answers
from training.common.cli import USER_ERRORS, report_error, require_data_folders
from training.data.speech_commands import SC12_CLASSES, open_split
from training.evaluation.evaluate import rate_report
from training.evaluation.report import paired_comparison, with_interval
from training.fitting.calibrate import require_unheard_validation
from training.serving import dt_scale_used, load_model

RULE_RATES = (16000, 8000)


def recipe_score(balanced: Sequence[dict]) -> dict:
    """The rule's score from each rate's `training.evaluation.report.balanced_accuracy` record: {"score",
    "interval"}, the mean of their accuracies, ± the mean of their half-widths."""
    if not balanced:
        raise ValueError("the score needs at least one rate's balanced accuracy")
    score = sum(record["accuracy"] for record in balanced) / len(balanced)
    half = sum((record["interval"][1] - record["interval"][0]) / 2 for record in balanced) / len(balanced)
    return {"score": score, "interval": [score - half, score + half]}


def validation_answers(model_path: Path, roots: Sequence[Path]) -> tuple[np.ndarray, dict[str, np.ndarray], dict]:
    """Labels (n,), {rate key: predicted class (n,)} at RULE_RATES (Δ rescaled) and the JSON of the validated
    12-class model at `model_path`, on the validation clips of every folder in `roots`, its heard validation
    speakers included: one pass, which the score and a clip-by-clip comparison both read."""
    model, meta = load_model(model_path)
    require_unheard_validation(meta, model_path)
    if tuple(meta["classes"]) != SC12_CLASSES:
        raise ValueError(f"{model_path}: the rule scores 12-class models ({', '.join(SC12_CLASSES)})")
    protocol = meta.get("data", {}).get("protocol", "official")
    validation = open_split(roots, "sc12", "validation", meta["sample_rate"], protocol)
    return (*answers(model, meta, validation, RULE_RATES), meta)


def validation_results(labels: np.ndarray, predicted: dict[str, np.ndarray], meta: dict, roots: Sequence[Path]) -> dict:
    """{rate key: `training.evaluation.evaluate.rate_report`} of `validation_answers`; every class must have clips."""
    results = {
        str(rate): rate_report(labels, predicted[str(rate)], SC12_CLASSES, dt_scale_used(meta, rate, True))
        for rate in RULE_RATES
    }
    missing = results[str(RULE_RATES[0])]["balanced_accuracy"]["missing"]
    if missing:
        names = " + ".join(root.name for root in roots)
        raise ValueError(f"the validation split of {names} has no clips of {', '.join(missing)}: the rule needs all 12")
    return results


def paired_results(
    labels: np.ndarray, predicted: dict[str, np.ndarray], other_path: Path, roots: Sequence[Path]
) -> dict[str, dict]:
    """{rate key: `paired_comparison`} of the answers of `validation_answers` against those of the validated
    model at `other_path` on the same clips."""
    other_labels, other_predicted, _ = validation_answers(other_path, roots)
    if not np.array_equal(labels, other_labels):  # the same folders give the same clips in the same order
        raise ValueError(f"{other_path} was given other validation clips than the scored model")
    return {key: paired_comparison(predicted[key] == labels, other_predicted[key] == labels) for key in predicted}


def _print(results: dict[str, dict], score: dict, names: str) -> None:
    keys = list(results)
    n_clips = results[keys[0]]["n_clips"]
    print(f"validation speakers of {names}: {n_clips} clips; accuracy [95% interval] at " + " / ".join(keys) + " Hz")
    for word in SC12_CLASSES:
        figures = [results[key]["per_class_accuracy"][word] for key in keys]
        cells = "".join(f"{with_interval(f['accuracy'], f['interval']):>28s}" for f in figures)
        print(f"  {word:10s}{cells}{figures[0]['n_clips']:6d} clips")
    balanced = [results[key]["balanced_accuracy"] for key in keys]
    print(f"  {'balanced':10s}" + "".join(f"{with_interval(b['accuracy'], b['interval']):>28s}" for b in balanced))
    low, high = score["interval"]
    print(f"score {100 * score['score']:.2f} [{100 * low:.2f}, {100 * high:.2f}] (95%)")


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.recipe_score", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)  # fmt: skip
    parser.add_argument("--model", type=Path, required=True, help="the validated run's exported 12-class model")
    parser.add_argument("--data", type=Path, nargs="+", required=True, help="the Speech Commands folders it used")
    parser.add_argument("--against", type=Path, help="another validated model: compare the two clip by clip")
    parser.add_argument("--json", type=Path, help="write the JSON here (default: benchmarks/results/...)")
    args = parser.parse_args(argv)
    try:
        require_data_folders(args.data)
        labels, predicted, meta = validation_answers(args.model, args.data)
        results = validation_results(labels, predicted, meta, args.data)
        paired = paired_results(labels, predicted, args.against, args.data) if args.against else None
    except USER_ERRORS as error:
        return report_error(error)
    score = recipe_score([result["balanced_accuracy"] for result in results.values()])
    names = " + ".join(folder.resolve().name for folder in args.data)
    _print(results, score, names)
    for key, comparison in (paired or {}).items():
        print(f"{key} Hz against {args.against}: right {comparison['right'][0]} vs {comparison['right'][1]} of"
              f" {comparison['n_clips']}; only this model {comparison['only_a']}, only the other"
              f" {comparison['only_b']}; exact McNemar p = {comparison['p']:.3f}")  # fmt: skip
    rates = {
        key: {name: result[name] for name in ("balanced_accuracy", "per_class_accuracy", "accuracy", "n_clips")}
        for key, result in results.items()
    }
    payload = {"model": str(args.model), "data": [folder.resolve().name for folder in args.data],
               "split": "validation", "rule": "balanced accuracy over 12 classes, mean of 16 and 8 kHz",
               **score, "rates": rates, "machine": machine()}  # fmt: skip
    if paired:
        payload["against"] = {"model": str(args.against), "rates": paired}
    print(f"wrote {write_json(f'recipe-score-{args.model.parent.name}', payload, args.json)}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
