"""Accuracies with their 95% intervals, per class and balanced over the classes, and the printed evaluation report.

A figure measured on a few hundred clips moves by a few points from one set of speakers to the next: every
accuracy here comes with an interval, so that no choice is made inside the noise.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

Z95 = 1.959963984540054  # the standard normal's 97.5% quantile: two-sided 95%


def wilson_interval(k: int, n: int, z: float = Z95) -> tuple[float, float]:
    """Wilson score interval of a proportion k / n (Wilson 1927): (p̂ + z²/2n ± z·√(p̂(1−p̂)/n + z²/4n²)) / (1 + z²/n).

    Unlike p̂ ± z·√(p̂(1−p̂)/n) it stays inside [0, 1] and is not empty at k = 0 or k = n. n = 0 → (0, 1).
    """
    if not 0 <= k <= n:
        raise ValueError(f"a proportion needs 0 <= k <= n, got k={k}, n={n}")
    if n == 0:
        return 0.0, 1.0
    p, z2 = k / n, z * z
    centre = (p + z2 / (2 * n)) / (1 + z2 / n)
    half = z * math.sqrt(p * (1 - p) / n + z2 / (4 * n * n)) / (1 + z2 / n)
    return max(0.0, centre - half), min(1.0, centre + half)


def per_class_accuracy(confusion: Sequence[Sequence[int]], classes: Sequence[str]) -> dict[str, dict]:
    """{class: {"accuracy", "correct", "n_clips", "interval" (Wilson 95%)}} from a confusion matrix whose rows are
    the true classes: the fraction of each class's clips answered with that class (its recall). A class without
    clips has accuracy None."""
    figures = {}
    for index, name in enumerate(classes):
        n, k = int(sum(confusion[index])), int(confusion[index][index])
        accuracy = k / n if n else None
        figures[name] = {"accuracy": accuracy, "correct": k, "n_clips": n, "interval": wilson_interval(k, n)}
    return figures


def balanced_accuracy(per_class: dict[str, dict], z: float = Z95) -> dict:
    """Mean over the K classes that have clips of their accuracy p_c = k_c / n_c, with a normal-approximation
    interval: mean ± z·√(Σ_c p̃_c (1 − p̃_c) / n_c) / K, the classes independent binomial proportions. The variance
    uses p̃_c = (k_c + 2) / (n_c + 4) (Agresti–Coull): a class at 0% or 100% is not taken to have no noise.

    → {"accuracy", "interval", "n_classes", "missing": classes without clips (left out of the mean)}.
    """
    present = [figures for figures in per_class.values() if figures["n_clips"]]
    if not present:
        return {"accuracy": None, "interval": (0.0, 1.0), "n_classes": 0, "missing": list(per_class)}
    mean = sum(f["accuracy"] for f in present) / len(present)
    adjusted = [((f["correct"] + 2) / (f["n_clips"] + 4), f["n_clips"]) for f in present]
    variance = sum(p * (1 - p) / n for p, n in adjusted) / len(present) ** 2
    half = z * math.sqrt(variance)
    missing = [name for name, figures in per_class.items() if not figures["n_clips"]]
    return {"accuracy": mean, "interval": (mean - half, mean + half), "n_classes": len(present), "missing": missing}


def paired_comparison(right_a: Sequence[bool], right_b: Sequence[bool]) -> dict:
    """Two models on the same clips, each clip right or wrong (n,) → {"right": [k_a, k_b], "n_clips", "only_a",
    "only_b", "p"}: the clips only one of them gets right, and the exact McNemar p-value (McNemar 1947): under
    "equally good" each such clip goes either way with probability 1/2, p = P(a two-sided binomial this uneven).
    Paired clips see a difference that two independent intervals of a few points would hide."""
    if len(right_a) != len(right_b):
        raise ValueError(f"a paired comparison needs the same clips, got {len(right_a)} and {len(right_b)} answers")
    only_a = sum(1 for a, b in zip(right_a, right_b, strict=True) if a and not b)
    only_b = sum(1 for a, b in zip(right_a, right_b, strict=True) if b and not a)
    n = only_a + only_b
    tail = sum(math.comb(n, i) for i in range(min(only_a, only_b) + 1)) / 2**n
    return {"right": [int(sum(map(bool, right_a))), int(sum(map(bool, right_b)))], "n_clips": len(right_a),
            "only_a": only_a, "only_b": only_b, "p": min(1.0, 2 * tail)}  # fmt: skip


def with_interval(value: float | None, interval: Sequence[float]) -> str:
    """ "0.9230 [0.9012, 0.9405]"; "—" for a figure without clips."""
    return "—" if value is None else f"{value:.4f} [{interval[0]:.4f}, {interval[1]:.4f}]"


def _bracket(interval: Sequence[float]) -> str:
    return f"[{interval[0]:.4f}, {interval[1]:.4f}]"


def print_results(name: str, results: dict[str, dict], classes: Sequence[str]) -> None:
    """The report of one model on stdout: per rate, accuracy, balanced accuracy, a keyword spotter's commands and
    non-commands figures, and each class's accuracy and precision; every proportion with its 95% interval."""
    print(f"== {name}   (95% intervals in brackets: Wilson; balanced accuracy: normal approximation)")
    for key, result in results.items():
        intervals, balanced = result["intervals"], result["balanced_accuracy"]
        print(
            f"-- {key} Hz (dt_scale {result['dt_scale']:g}): accuracy {result['accuracy']:.4f} on {result['n_clips']}"
            f" clips {_bracket(intervals['accuracy'])}; balanced accuracy "
            f"{with_interval(balanced['accuracy'], balanced['interval'])} over {balanced['n_classes']} classes"
        )
        if "commands" in result:
            commands, others, spans = result["commands"], result.get("non_commands"), intervals["commands"]
            line = f"   commands: accuracy {commands['accuracy']:.4f}, rejected {commands['rejected']:.4f}"
            line += f" of {commands['n_clips']} clips (accuracy {_bracket(spans['accuracy'])}"
            line += f", rejected {_bracket(spans['rejected'])})"
            if others:
                line += f"; non-commands: rejected {others['rejected']:.4f} of {others['n_clips']} clips"
                line += f" {_bracket(intervals['non_commands']['rejected'])}"
            print(line)
        print(f"   {'class':10s} {'accuracy [95% interval]':>26s} {'clips':>6s} precision")
        for word in classes:
            figures = result["per_class_accuracy"][word]
            shown = with_interval(figures["accuracy"], figures["interval"])
            print(f"   {word:10s} {shown:>26s} {figures['n_clips']:6d} {result['per_class'][word]['precision']:9.3f}")


def print_table(table: dict[str, dict[str, float]]) -> None:
    """Models (rows) against rate keys (columns) of one figure."""
    columns = list(dict.fromkeys(c for row in table.values() for c in row))
    width = max(len(name) for name in table) + 2
    print("model".ljust(width) + "".join(f"{c:>18s}" for c in columns))
    for name, row in table.items():
        print(name.ljust(width) + "".join(f"{row.get(c, float('nan')):18.4f}" for c in columns))
