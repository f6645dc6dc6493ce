"""Class balance for training (config `data.balance`): a sampler that draws every class equally often, or
cross-entropy weights that count each class's clips as much as any other's.

Real data is lopsided: a second folder may bring five times the voices for half of the commands and none for
the others. Left alone, the classes with few clips pay for it.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence

import numpy as np
import torch
from torch.utils.data import Sampler

BALANCE = ("none", "sampler", "weights")


def class_counts(labels: Sequence[int], n_classes: int) -> list[int]:
    """Clips per class index 0..n_classes-1 of `labels`."""
    return np.bincount(np.asarray(labels, dtype=np.int64), minlength=n_classes).tolist()


def _require_every_class(counts: Sequence[int], classes: Sequence[str] | None) -> None:
    empty = [classes[i] if classes else str(i) for i, n in enumerate(counts) if n == 0]
    if empty:
        raise ValueError(f"cannot balance the classes: the training split has no clips of {', '.join(empty)}")


def class_weights(counts: Sequence[int], classes: Sequence[str] | None = None) -> torch.Tensor:
    """Cross-entropy weights (C,) inversely proportional to each class's clips, scaled to a mean of 1:
    w_c = (1 / n_c) / mean_k(1 / n_k). A class with no clips is a ValueError naming it."""
    _require_every_class(counts, classes)
    inverse = 1.0 / torch.tensor(counts, dtype=torch.float64)
    return (inverse / inverse.mean()).float()


class BalancedSampler(Sampler[int]):
    """Indices of a training set whose clips have `labels`: each draw picks a class uniformly, then one of its
    clips uniformly, with replacement; `num_samples` draws an epoch.

    The draws of epoch e depend only on (seed, e): Lightning calls `set_epoch` before every epoch, so a run
    resumed from a checkpoint draws what the uninterrupted run would have drawn. Under DDP Lightning wraps it in a
    `DistributedSamplerWrapper`, which passes the epoch on: every process draws the same list and takes its share.
    """

    def __init__(
        self, labels: Sequence[int], n_classes: int, num_samples: int, seed: int, classes: Sequence[str] | None = None
    ) -> None:
        if num_samples < 1:
            raise ValueError(f"a balanced epoch needs at least one draw, got {num_samples}")
        counts = class_counts(labels, n_classes)
        _require_every_class(counts, classes)
        # P(clip i) = 1 / (C · n_{label i}): every class gets 1 / C of the draws.
        self.probabilities = 1.0 / (n_classes * np.asarray(counts, dtype=np.float64)[np.asarray(labels)])
        self.probabilities /= self.probabilities.sum()  # exact already; guards the rounding of many small terms
        self.num_samples, self.seed, self.epoch = num_samples, seed, 0

    def set_epoch(self, epoch: int) -> None:
        self.epoch = epoch

    def __len__(self) -> int:
        return self.num_samples

    def __iter__(self) -> Iterator[int]:
        rng = np.random.default_rng([self.seed, self.epoch])
        draws = rng.choice(len(self.probabilities), size=self.num_samples, replace=True, p=self.probabilities)
        return iter(draws.tolist())
