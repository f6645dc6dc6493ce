"""PNG figures: learning curves from the CSV logs, confusion matrices, and the S4-vs-CNN accuracy bars."""

from __future__ import annotations

import csv
import os
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
    for key, ax in (("train_loss_epoch", loss_ax), ("val_loss", loss_ax), ("train_acc", acc_ax), ("val_acc", acc_ax)):
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
        ax.bar(xs, [row.get(col, 0.0) for col in columns], width, label=name)
    ax.set_xticks([c + width * (len(table) - 1) / 2 for c in range(len(columns))], columns)
    ax.set_ylim(0, 1)
    ax.set_ylabel("accuracy")
    ax.legend(fontsize=8)
    ax.set_title(title, fontsize=9)
    figure.tight_layout()
    figure.savefig(png, dpi=100)
    plt.close(figure)
    return Path(png)
