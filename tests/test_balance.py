"""Class balance (config data.balance): the balanced sampler draws every class equally often, reproducibly per
epoch and across a resume; the loss weights match a hand computation; bad settings are config errors."""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import pytest
import torch
import yaml
from lightning.fabric.utilities.distributed import DistributedSamplerWrapper
from scipy.stats import chisquare
from test_evaluate import make_real_folder

from training.data.speech_commands import SC10_CLASSES, SpeechCommands
from training.fitting import balance, train
from training.fitting.balance import BalancedSampler, class_weights
from training.fitting.config import ConfigError, validate
from training.fitting.datamodule import SpeechCommandsDataModule
from training.fitting.lightning_module import SpeechClassifier

COUNTS = [1, 2, 5, 50, 200, 3, 7, 11, 13, 17, 400, 900]  # clips per class: 1 to 900, twelve classes
LABELS = [c for c, n in enumerate(COUNTS) for _ in range(n)]


def test_sampler_draws_every_class_equally_often() -> None:
    draws = 120_000
    sampler = BalancedSampler(LABELS, len(COUNTS), draws, seed=0)
    drawn = np.asarray(list(sampler))
    assert len(drawn) == len(sampler) == draws
    per_class = np.bincount(np.asarray(LABELS)[drawn], minlength=len(COUNTS))
    # Each class count is Binomial(draws, 1/12): within 5 standard deviations (a chance of 7e-6 over 12 classes).
    p = 1 / len(COUNTS)
    assert np.abs(per_class - draws * p).max() < 5 * math.sqrt(draws * p * (1 - p)), per_class
    # And within a class every clip alike: clip i has probability 1 / (12 · n_class), a chi-square test over clips.
    expected = draws / (len(COUNTS) * np.asarray(COUNTS, dtype=float)[LABELS])
    assert chisquare(np.bincount(drawn, minlength=len(LABELS)), expected).pvalue > 1e-4


def test_sampler_is_a_function_of_seed_and_epoch() -> None:
    def epoch_of(seed: int, epoch: int) -> list[int]:
        sampler = BalancedSampler(LABELS, len(COUNTS), 500, seed)
        sampler.set_epoch(epoch)
        return list(sampler)

    running = BalancedSampler(LABELS, len(COUNTS), 500, seed=3)
    seen = []
    for epoch in range(3):
        running.set_epoch(epoch)
        seen.append(list(running))
    assert seen[2] == epoch_of(3, 2)  # a fresh sampler (a resumed run) at epoch 2 draws what the running one did
    assert list(running) == seen[2]  # the same epoch again: the same draws
    assert seen[0] != seen[1] and seen[0] != epoch_of(4, 0)


def test_ddp_processes_share_each_epochs_draws() -> None:
    # What Lightning does with a custom sampler under DDP: wrap it, and call the wrapper's set_epoch every epoch.
    def shares(epoch: int) -> list[list[int]]:
        wrapped = [
            DistributedSamplerWrapper(BalancedSampler(LABELS, 12, 600, 2), num_replicas=2, rank=r) for r in (0, 1)
        ]
        for sampler in wrapped:
            sampler.set_epoch(epoch)
        return [list(sampler) for sampler in wrapped]

    for epoch in (0, 1):
        drawn = BalancedSampler(LABELS, 12, 600, seed=2)
        drawn.set_epoch(epoch)
        first, second = shares(epoch)
        assert len(first) == len(second) == 300 and sorted(first + second) == sorted(drawn)
    assert shares(0) != shares(1)


def test_class_weights_by_hand() -> None:
    # 1/n = 1, 1/2, 1/4; their mean is 7/12, so the weights are 12/7, 6/7, 3/7.
    torch.testing.assert_close(class_weights([1, 2, 4]), torch.tensor([12 / 7, 6 / 7, 3 / 7]))
    assert class_weights(COUNTS).mean().item() == pytest.approx(1.0)
    with pytest.raises(ValueError, match="no clips of b"):
        class_weights([3, 0], ["a", "b"])


TINY = {"model": {"kind": "cnn", "n_channels": 4}, "data": {"subset": "sc10", "balance": "weights"}}


def test_training_loss_is_weighted_by_hand() -> None:
    torch.manual_seed(0)
    counts = [4, 1, 2, 2, 2, 2, 2, 2, 2, 8]
    module = SpeechClassifier(validate(TINY), 10, counts).eval()  # eval: BatchNorm's running figures, no updates
    waveform, label = torch.randn(5, 16000), torch.tensor([0, 1, 9, 9, 3])
    loss = module.training_step((waveform, label, None), 0)
    with torch.no_grad():
        logits = module(waveform)
    inverse = [1 / n for n in counts]
    weight = [w / (sum(inverse) / len(inverse)) for w in inverse]
    terms = [(weight[y], -(logits[i, y] - logits[i].exp().sum().log()).item()) for i, y in enumerate(label.tolist())]
    expected = sum(w * nll for w, nll in terms) / sum(w for w, _ in terms)  # cross-entropy's weighted mean
    assert loss.item() == pytest.approx(expected, rel=1e-5)
    with pytest.raises(ValueError, match="class_counts"):
        SpeechClassifier(validate(TINY), 10)


@pytest.mark.parametrize(
    ("data", "key"),
    [
        ({"balance": "oversample"}, "data.balance"),
        ({"balance": None}, "data.balance"),
        ({"balance": "sampler", "epoch_clips": 0}, "data.epoch_clips"),
        ({"balance": "sampler", "epoch_clips": 2.5}, "data.epoch_clips"),
        ({"balance": "sampler", "epoch_clips": True}, "data.epoch_clips"),
    ],
)
def test_bad_balance_settings_are_config_errors(data: dict, key: str) -> None:
    with pytest.raises(ConfigError, match=key):
        validate({"data": data})


@pytest.fixture()
def folder(tmp_path: Path) -> Path:
    # Two training speakers of each word, one _silence_ clip and ten one-second noise cuts: silence is the big class.
    return make_real_folder(tmp_path / "real", words=(*SC10_CLASSES, "bed"), silence=True)


def test_data_module_draws_epoch_clips_with_the_sampler(folder: Path, tmp_path: Path) -> None:
    module = SpeechCommandsDataModule(folder, subset="sc10", batch_size=4, balance="sampler", seed=5)
    loader = module.train_dataloader()
    assert isinstance(loader.sampler, BalancedSampler) and len(loader.sampler) == len(SpeechCommands(folder))
    module = SpeechCommandsDataModule(folder, subset="sc10", batch_size=4, balance="sampler", epoch_clips=7)
    assert sum(len(batch[1]) for batch in module.train_dataloader()) == 7
    assert SpeechCommandsDataModule(folder, subset="sc12").class_counts == [2] * 10 + [11, 2]
    quiet = make_real_folder(tmp_path / "quiet", words=SC10_CLASSES)
    with pytest.raises(ValueError, match="no clips of _silence_, _unknown_"):
        SpeechCommandsDataModule(quiet, subset="sc12", balance="sampler").train_dataloader()


def test_resumed_run_draws_the_epochs_it_had_not_drawn(folder: Path, tmp_path: Path, monkeypatch) -> None:
    epochs: list[int] = []
    draw = BalancedSampler.__iter__

    def spy(self):
        epochs.append(self.epoch)
        return draw(self)

    monkeypatch.setattr(balance.BalancedSampler, "__iter__", spy)
    config = {"model": {"kind": "cnn", "n_channels": 4}, "data": {"subset": "sc12", "batch_size": 4}}
    config["data"].update(balance="sampler", epoch_clips=8)
    config["trainer"] = {"max_epochs": 1, "log_every_n_steps": 1}
    path = tmp_path / "c.yaml"
    path.write_text(yaml.safe_dump(config))
    args = ["--config", str(path), "--data", str(folder), "--out", str(tmp_path / "run")]
    assert train.main(args) == 0
    assert train.main([*args, "--resume", "--max-epochs", "3"]) == 0
    assert epochs == [0, 1, 2]  # Lightning sets each epoch; the resumed run starts at the next one
