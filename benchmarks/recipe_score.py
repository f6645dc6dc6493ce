"""Score a keyword-spotting recipe by the rule its runs are chosen by: the validation speakers' commands, clean
and in noise.

    python -m benchmarks.recipe_score --model runs/sc12-real-val/model.safetensors --data DIR [--snr-db 10 5 0 -5]

The model is the *validated* run of a recipe: trained without the validation speakers, which chose its rejection
offset (`training.calibrate`). Its JSON lists them as heard, so `training.evaluate` would leave them out; here
they are the point, and they are scored. A final fit (`data.train_on` holding validation) is refused.

Per rate and noise level: commands right (a command answered silence or "not a command" counts wrong), with the
split's own part of the background-noise recordings mixed in at each SNR (`training.evaluate.noisy`). The score is
the mean over the rates of (1 − W) × clean + W × at 0 dB SNR, W = 0.05: clean speech decides, and a recipe that
falls apart in a loud room (about one speaker in twenty here) pays for it. Writes
benchmarks/results/recipe-score-<run folder>-<date>.json.
"""

from __future__ import annotations

import argparse
from collections.abc import Sequence
from pathlib import Path

from benchmarks.common import machine, write_json
from training.calibrate import require_unheard_validation, validation_clips
from training.cli import USER_ERRORS, report_error, require_data_folder
from training.evaluate import evaluate_model, subset_of
from training.export import load_model

NOISY_WEIGHT = 0.05
RULE_SNR_DB = 0.0


def recipe_score(clean: Sequence[float], at_rule_snr: Sequence[float]) -> float:
    """The rule: mean over rates of (1 − W) × clean + W × at 0 dB; both (rates,) commands accuracies."""
    if len(clean) != len(at_rule_snr) or not clean:
        raise ValueError(f"need one clean and one 0 dB figure per rate, got {list(clean)} and {list(at_rule_snr)}")
    mixed = [(1 - NOISY_WEIGHT) * c + NOISY_WEIGHT * z for c, z in zip(clean, at_rule_snr, strict=True)]
    return sum(mixed) / len(mixed)


def commands_right(model_path: Path, data: Path, rates: Sequence[int], snrs: Sequence[float | None]) -> dict:
    """{snr ("clean" or dB): {rate key: commands accuracy}} on the validation speakers of `data`."""
    model, meta = load_model(model_path)
    require_unheard_validation(meta, model_path)
    protocol = meta.get("data", {}).get("protocol", "official")
    validation = validation_clips(data, subset_of(meta["classes"]), meta["sample_rate"], protocol)
    table = {}
    for snr in snrs:
        results = evaluate_model(model, meta, validation, rates, heard=[], snr_db=snr)
        table["clean" if snr is None else f"{snr:g}"] = {key: r["commands"]["accuracy"] for key, r in results.items()}
    return table


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.recipe_score", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)  # fmt: skip
    parser.add_argument("--model", type=Path, required=True, help="the validated run's exported 12-class model")
    parser.add_argument("--data", type=Path, required=True, help="Speech Commands folder (its validation split)")
    parser.add_argument("--rates", type=int, nargs="+", default=[16000, 8000])
    parser.add_argument("--snr-db", type=float, nargs="+", default=[10, 5, 0, -5], help="noise levels to report")
    args = parser.parse_args(argv)
    snrs = [None, *sorted(set(args.snr_db) | {RULE_SNR_DB}, reverse=True)]
    try:
        require_data_folder(args.data)
        table = commands_right(args.model, args.data, args.rates, snrs)
    except USER_ERRORS as error:
        return report_error(error)
    keys = list(table["clean"])
    score = recipe_score([table["clean"][k] for k in keys], [table[f"{RULE_SNR_DB:g}"][k] for k in keys])
    print("commands right on the validation speakers, " + " / ".join(keys))
    for level, row in table.items():
        print(f"  {level if level == 'clean' else level + ' dB':>7}: " + " / ".join(f"{row[k]:.1%}" for k in keys))
    print(f"score {100 * score:.2f}")
    payload = {"model": str(args.model), "data": args.data.name, "split": "validation", "commands_right": table,
               "score": score, "noisy_weight": NOISY_WEIGHT, "rule_snr_db": RULE_SNR_DB,
               "machine": machine()}  # fmt: skip
    print(f"wrote {write_json(f'recipe-score-{args.model.parent.name}', payload)}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
