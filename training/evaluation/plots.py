"""PNG figures: learning curves from the CSV logs, confusion matrices, S4-vs-CNN bars, accuracy vs sampling rate."""

from __future__ import annotations

import csv
import os
import textwrap
from collections.abc import Sequence
from pathlib import Path

import matplotlib

matplotlib.use("Agg")  # files only: no display on servers and CI
import matplotlib.pyplot as plt  # noqa: E402


def _read_series(csv_paths: Sequence[Path], key: str) -> tuple[list[float], list[float]]:
    """(step, value) pairs for `key` from every metrics.csv (resumed runs write one per version), by step."""
    points = {}
    for path in csv_paths:
        with open(path, newline="") as handle:
            for row in csv.DictReader(handle):
                if row.get(key) not in (None, "") and row.get("step") not in (None, ""):
                    points[int(float(row["step"]))] = float(row[key])
    steps = sorted(points)
    return steps, [points[s] for s in steps]


def learning_curves(csv_paths: Sequence[str | os.PathLike], png: str | os.PathLike, title: str = "") -> Path:
    """Loss (per batch and per epoch) and accuracy (train per epoch, validation) against the step → PNG."""
    paths = [Path(p) for p in csv_paths]
    figure, (loss_ax, acc_ax) = plt.subplots(1, 2, figsize=(11, 4))
    steps, values = _read_series(paths, "train_loss_step")
    if steps:  # noisy per-batch losses, faint behind the epoch averages
        loss_ax.plot(steps, values, alpha=0.3, linewidth=0.8, label="train_loss_step")
    curves = ("train_loss_epoch", loss_ax), ("val_loss", loss_ax), ("train_acc", acc_ax), ("val_acc", acc_ax)
    for key, ax in (*curves, ("val_balanced_acc", acc_ax)):
        steps, values = _read_series(paths, key)
        if steps:
            ax.plot(steps, values, marker="o", markersize=3, label=key)
    for ax, label in ((loss_ax, "cross-entropy"), (acc_ax, "accuracy")):
        ax.set_xlabel("step")
        ax.set_ylabel(label)
        ax.grid(alpha=0.3)
        ax.legend()
    figure.suptitle(title)
    figure.tight_layout()
    figure.savefig(png, dpi=100)
    plt.close(figure)
    return Path(png)


def confusion_png(matrix: list[list[int]], classes: Sequence[str], png: str | os.PathLike, title: str) -> Path:
    """Confusion matrix (rows: true class, columns: predicted) with counts in the cells → PNG."""
    n = len(classes)
    figure, ax = plt.subplots(figsize=(1.0 + 0.5 * n, 0.8 + 0.5 * n))
    ax.imshow(matrix, cmap="Blues")
    ax.set_xticks(range(n), classes, rotation=90)
    ax.set_yticks(range(n), classes)
    ax.set_xlabel("predicted")
    ax.set_ylabel("true")
    peak = max((max(row) for row in matrix), default=0)
    for i, row in enumerate(matrix):
        for j, count in enumerate(row):
            if count:
                ax.text(
                    j,
                    i,
                    str(count),
                    ha="center",
                    va="center",
                    fontsize=7,
                    color="white" if count > peak / 2 else "black",
                )
    ax.set_title(title, fontsize=9)
    figure.tight_layout()
    figure.savefig(png, dpi=100)
    plt.close(figure)
    return Path(png)


def comparison_png(table: dict[str, dict[str, float]], png: str | os.PathLike, title: str) -> Path:
    """Grouped bars: {model name: {rate column: accuracy}} → PNG, one group per rate column."""
    columns = list(dict.fromkeys(c for row in table.values() for c in row))
    width = 0.8 / max(1, len(table))
    figure, ax = plt.subplots(figsize=(2 + 1.5 * len(columns), 4))
    for i, (name, row) in enumerate(table.items()):
        xs = [c + i * width for c in range(len(columns))]
        ax.bar(xs, [row.get(col, float("nan")) for col in columns], width, label=name)  # nan: no bar, not 0
    ax.set_xticks([c + width * (len(table) - 1) / 2 for c in range(len(columns))], columns)
    ax.set_ylim(0, 1)
    ax.set_ylabel("accuracy")
    ax.legend(fontsize=8)
    ax.set_title(title, fontsize=9)
    figure.tight_layout()
    figure.savefig(png, dpi=100)
    plt.close(figure)
    return Path(png)


def _hz(rate: float) -> str:
    """4000 → "4k", 11025 → "11.025k": tick labels of the rate axis."""
    return f"{rate / 1000:g}k"


def rate_sweep_figure(sweep: dict) -> plt.Figure:
    """Accuracy against the input sampling rate (x log-scaled in Hz), from a `training.evaluation.evaluate.rate_sweep`
    dict.

    One line per curve (solid: Δ rescaled or a CNN; dashed: S4 with Δ unchanged; gaps where a model could not
    run), a dotted chance line per number of classes, and a grey line at the training rate.
    """
    figure, ax = plt.subplots(figsize=(8, 5))
    for curve in sweep["curves"]:
        rates = sorted(int(rate) for rate, value in curve["accuracy"].items() if value is not None)
        values = [curve["accuracy"][str(rate)] for rate in rates]
        style = "--" if curve.get("rescaled") is False else "-"
        ax.plot(rates, values, style, marker="o", markersize=4, label=curve["label"])
    for shade, n_classes in enumerate(sorted({curve["n_classes"] for curve in sweep["curves"]})):
        ax.axhline(1 / n_classes, color=str(0.45 * shade), ls=":", lw=1, label=f"chance (1/{n_classes})")
    for train_rate in sorted({curve["train_rate"] for curve in sweep["curves"]}):
        ax.axvline(train_rate, color="grey", lw=0.8, alpha=0.6)
        ax.annotate(f"training rate {train_rate / 1000:g} kHz", (train_rate, 1.01), fontsize=7, color="grey")
    ax.set_xscale("log")
    # Rotated and right-anchored: 44.1k and 48k sit close together on a log axis.
    ax.set_xticks(sweep["rates"], [_hz(rate) for rate in sweep["rates"]], rotation=45, ha="right")
    plt.setp(ax.get_xticklabels(), rotation_mode="anchor")
    ax.minorticks_off()  # the given rates are the ticks; log-scale minor ticks would only clutter them
    ax.set_ylim(0, 1.05)
    ax.set_xlabel("input sampling rate (Hz, log scale)")
    ax.set_ylabel(textwrap.fill(sweep["metric"], 50), fontsize=8)
    ax.grid(alpha=0.3)
    # Below the axes: inside, the legend would hide the low end of the curves, where they differ most.
    ax.legend(fontsize=7, loc="upper center", bbox_to_anchor=(0.5, -0.2), ncol=2)
    ax.set_title(sweep["title"], fontsize=9)
    return figure


def rate_sweep_png(sweep: dict, png: str | os.PathLike) -> Path:
    """`rate_sweep_figure` → PNG (cropped to its contents: the legend sits below the axes)."""
    figure = rate_sweep_figure(sweep)
    figure.savefig(png, dpi=100, bbox_inches="tight")
    plt.close(figure)
    return Path(png)
