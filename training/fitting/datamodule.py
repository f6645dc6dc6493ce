"""The Lightning data module: train / validation / test loaders over `SpeechCommands`, of one folder or several
(`training.data.speech_commands.Folders`: each folder split by its own lists), the training split augmented
(`training.data.augment`) when asked. `train_on=("train", "validation")` trains on both splits (a final fit); the
validation loader then serves nothing, since its clips are training clips. `balance="sampler"` draws the training
clips with a `training.fitting.balance.BalancedSampler`."""

from __future__ import annotations

import inspect
import logging
import os
from collections.abc import Sequence
from pathlib import Path

import lightning as L
import torch
from torch.utils.data import ConcatDataset, DataLoader, Dataset

from training.data.augment import Augment, Augmented, load_noises
from training.data.speech_commands import NOISE_FOLDER, open_split
from training.fitting.balance import BALANCE, BalancedSampler, class_counts
from training.fitting.config import TRAIN_SPLITS

log = logging.getLogger(__name__)


class SpeechCommandsDataModule(L.LightningDataModule):
    """Train/validation/test loaders over the Speech Commands folder `root` (or a list of folders); `augment=True`
    augments the training split with `training.data.augment.Augment`, whose options (shift_ms, noise_prob, snr_db,
    gain_db, speed) pass through, and with the training part of every folder's `_background_noise_` (or of
    `noise_dir`). `balance`: "none" shuffles; "sampler" draws `epoch_clips` clips an epoch (None: the training
    set's size), every class equally often; "weights" leaves the loader as "none" (the loss is weighted)."""

    def __init__(
        self,
        root: str | os.PathLike | Sequence[str | os.PathLike],
        subset: str = "sc10",
        protocol: str = "official",
        batch_size: int = 16,
        num_workers: int = 0,
        sample_rate: int = 16000,
        augment: bool = False,
        noise_dir: str | os.PathLike | None = None,
        seed: int = 0,
        train_on: Sequence[str] = ("train",),
        balance: str = "none",
        epoch_clips: int | None = None,
        **augment_options,
    ) -> None:
        super().__init__()
        unknown = sorted(set(augment_options) - set(inspect.signature(Augment).parameters) - {"noises", "sample_rate"})
        if unknown:
            raise ValueError(f"unknown augmentation option(s) {', '.join(unknown)} (see training.data.augment.Augment)")
        if balance not in BALANCE:
            raise ValueError(f"unknown balance {balance!r}; choose one of {', '.join(BALANCE)}")
        roots = [root] if isinstance(root, (str, os.PathLike)) else list(root)
        self.roots, self.subset, self.protocol = [Path(r) for r in roots], subset, protocol
        self.balance, self.epoch_clips = balance, epoch_clips
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
        self._labels: dict[str, list[int]] = {}

    def _dataset(self, split: str) -> Dataset:
        if split not in self._datasets:
            parts = self.train_on if split == "train" else (split,)
            splits = [open_split(self.roots, self.subset, part, self.sample_rate, self.protocol) for part in parts]
            self._labels[split] = [label for dataset in splits for label in dataset.labels]
            dataset = splits[0] if len(splits) == 1 else ConcatDataset(splits)
            if split == "train" and self.augment:
                augment = Augment(self._noises(), self.sample_rate, **self.augment_options)
                dataset = Augmented(dataset, augment, self.seed)
            self._datasets[split] = dataset
        return self._datasets[split]

    def _noises(self) -> list[torch.Tensor]:
        """The recordings to mix into training clips: `noise_dir`'s, or every folder's `_background_noise_`; of
        a folder's own noise only the training part (the rest makes its validation and test silence)."""
        own = [root / NOISE_FOLDER for root in self.roots]
        folders = [Path(self.noise_dir)] if self.noise_dir else [folder for folder in own if folder.is_dir()]
        noises = []
        for folder in folders:
            part = "train" if any(folder.resolve() == mine.resolve() for mine in own) else None
            noises += load_noises(folder, self.sample_rate, part) if folder.is_dir() else []
        if not noises:
            where = ", ".join(str(folder) for folder in folders or own)
            log.warning("no background noise found in %s: augmenting without noise", where)
        return noises

    @property
    def classes(self) -> tuple[str, ...]:
        return self._dataset("test").classes

    @property
    def class_counts(self) -> list[int]:
        """Training clips per class, in `classes` order."""
        self._dataset("train")
        return class_counts(self._labels["train"], len(self.classes))

    @property
    def validates(self) -> bool:
        """Whether a validation split is held out (not trained on)."""
        return "validation" not in self.train_on

    def setup(self, stage: str | None = None) -> None:
        splits = {"fit": ("train", "validation"), "validate": ("validation",), "test": ("test",)}
        for split in splits.get(stage, ("train", "validation", "test")):
            if split != "validation" or self.validates:
                self._dataset(split)

    def _loader(self, split: str, shuffle: bool, sampler: BalancedSampler | None = None) -> DataLoader:
        return DataLoader(
            self._dataset(split),
            batch_size=self.batch_size,
            shuffle=shuffle,
            sampler=sampler,
            num_workers=self.num_workers,
            generator=torch.Generator().manual_seed(self.seed),
        )

    def train_dataloader(self) -> DataLoader:
        if self.balance != "sampler":
            return self._loader("train", shuffle=True)
        self._dataset("train")
        labels = self._labels["train"]
        draws = self.epoch_clips or len(labels)
        sampler = BalancedSampler(labels, len(self.classes), draws, self.seed, self.classes)
        return self._loader("train", shuffle=False, sampler=sampler)

    def val_dataloader(self) -> DataLoader | list:
        return self._loader("validation", shuffle=False) if self.validates else []

    def test_dataloader(self) -> DataLoader:
        return self._loader("test", shuffle=False)
