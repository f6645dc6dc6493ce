"""The Lightning data module: train / validation / test loaders over `SpeechCommands`, the training split
augmented (`training.augment`) when asked. `train_on=("train", "validation")` trains on both splits (a final
fit); the validation loader then serves nothing, since its clips are training clips."""

from __future__ import annotations

import inspect
import logging
import os
from collections.abc import Sequence
from pathlib import Path

import lightning as L
import torch
from torch.utils.data import ConcatDataset, DataLoader, Dataset

from training.augment import Augment, Augmented, load_noises
from training.config import TRAIN_SPLITS
from training.data import NOISE_FOLDER, SpeechCommands

log = logging.getLogger(__name__)


class SpeechCommandsDataModule(L.LightningDataModule):
    """Train/validation/test loaders over `SpeechCommands`; `augment=True` augments the training split with
    `training.augment.Augment`, whose options (shift_ms, noise_prob, snr_db, gain_db, speed) pass through."""

    def __init__(
        self,
        root: str | os.PathLike,
        subset: str = "sc10",
        protocol: str = "official",
        batch_size: int = 16,
        num_workers: int = 0,
        sample_rate: int = 16000,
        augment: bool = False,
        noise_dir: str | os.PathLike | None = None,
        seed: int = 0,
        train_on: Sequence[str] = ("train",),
        **augment_options,
    ) -> None:
        super().__init__()
        unknown = sorted(set(augment_options) - set(inspect.signature(Augment).parameters) - {"noises", "sample_rate"})
        if unknown:
            raise ValueError(f"unknown augmentation option(s) {', '.join(unknown)} (see training.augment.Augment)")
        self.root, self.subset, self.protocol = Path(root), subset, protocol
        self.batch_size, self.num_workers, self.sample_rate, self.seed = (
            batch_size,
            num_workers,
            sample_rate,
            seed,
        )
        if "train" not in train_on or not set(train_on) <= set(TRAIN_SPLITS):
            raise ValueError(f"train_on must hold 'train' and optionally 'validation', got {list(train_on)}")
        self.train_on = tuple(train_on)
        self.augment, self.noise_dir = augment, noise_dir
        self.augment_options = augment_options
        self._datasets: dict[str, Dataset] = {}

    def _dataset(self, split: str) -> Dataset:
        if split not in self._datasets:
            parts = self.train_on if split == "train" else (split,)
            splits = [SpeechCommands(self.root, self.subset, part, self.sample_rate, self.protocol) for part in parts]
            dataset = splits[0] if len(splits) == 1 else ConcatDataset(splits)
            if split == "train" and self.augment:
                noise_dir = Path(self.noise_dir) if self.noise_dir else self.root / NOISE_FOLDER
                own = noise_dir.resolve() == (self.root / NOISE_FOLDER).resolve()
                part = "train" if own else None
                noises = load_noises(noise_dir, self.sample_rate, part) if noise_dir.is_dir() else []
                if not noises:
                    log.warning("no background noise found in %s: augmenting without noise", noise_dir)
                augment = Augment(noises, self.sample_rate, **self.augment_options)
                dataset = Augmented(dataset, augment, self.seed)
            self._datasets[split] = dataset
        return self._datasets[split]

    @property
    def classes(self) -> tuple[str, ...]:
        return self._dataset("test").classes

    @property
    def validates(self) -> bool:
        """Whether a validation split is held out (not trained on)."""
        return "validation" not in self.train_on

    def setup(self, stage: str | None = None) -> None:
        splits = {"fit": ("train", "validation"), "validate": ("validation",), "test": ("test",)}
        for split in splits.get(stage, ("train", "validation", "test")):
            if split != "validation" or self.validates:
                self._dataset(split)

    def _loader(self, split: str, shuffle: bool) -> DataLoader:
        return DataLoader(
            self._dataset(split),
            batch_size=self.batch_size,
            shuffle=shuffle,
            num_workers=self.num_workers,
            generator=torch.Generator().manual_seed(self.seed),
        )

    def train_dataloader(self) -> DataLoader:
        return self._loader("train", shuffle=True)

    def val_dataloader(self) -> DataLoader | list:
        return self._loader("validation", shuffle=False) if self.validates else []

    def test_dataloader(self) -> DataLoader:
        return self._loader("test", shuffle=False)
