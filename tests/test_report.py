"""training.evaluation.report: Wilson intervals against hand-computed values and scipy, per-class and balanced
accuracy from a confusion matrix; `training.evaluate` reports them at every rate; training logs and monitors
val_balanced_acc."""

from __future__ import annotations

import argparse
import json
import math
from pathlib import Path

import pytest
import torch
from scipy.stats import binomtest
from test_evaluate import export_for, make_real_folder

from training.data.speech_commands import SC12_CLASSES
from training.evaluation import evaluate
from training.evaluation.report import balanced_accuracy, per_class_accuracy, wilson_interval
from training.fitting import train
from training.fitting.config import validate
from training.fitting.lightning_module import SpeechClassifier


@pytest.mark.parametrize(
    ("k", "n", "low", "high"),
    [
        # By hand with z = 1.96, z² = 3.8416: centre (p + z²/2n)/(1 + z²/n), half z·√(p(1−p)/n + z²/4n²)/(1 + z²/n).
        (0, 10, 0.0, 0.2775401),  # centre = half = 0.19208 / 1.38416
        (5, 10, 0.2365896, 0.7634104),  # centre 0.5, half 1.96 · √0.034604 / 1.38416 = 0.2634104
        (10, 10, 0.7224599, 1.0),
        (0, 0, 0.0, 1.0),  # no clips: nothing is known
    ],
)
def test_wilson_interval_by_hand(k: int, n: int, low: float, high: float) -> None:
    assert wilson_interval(k, n, z=1.96) == pytest.approx((low, high), abs=1e-6)


@pytest.mark.parametrize(("k", "n"), [(1, 2), (37, 40), (163, 171), (0, 3)])
def test_wilson_interval_matches_scipy(k: int, n: int) -> None:
    reference = binomtest(k, n).proportion_ci(confidence_level=0.95, method="wilson")
    assert wilson_interval(k, n) == pytest.approx((reference.low, reference.high), abs=1e-12)
    with pytest.raises(ValueError, match="0 <= k <= n"):
        wilson_interval(3, 2)


def test_per_class_and_balanced_accuracy_from_a_confusion_matrix() -> None:
    confusion = [[8, 2, 0], [1, 3, 0], [0, 0, 0]]  # rows true: a 8 of 10, b 3 of 4, c no clips
    per_class = per_class_accuracy(confusion, ["a", "b", "c"])
    assert per_class["a"]["accuracy"] == 0.8 and per_class["b"]["n_clips"] == 4 and per_class["c"]["accuracy"] is None
    balanced = balanced_accuracy(per_class)
    # (0.8 + 0.75) / 2, half-width 1.96 · √(p̃a(1 − p̃a)/10 + p̃b(1 − p̃b)/4) / 2 with p̃a = 10/14, p̃b = 5/8.
    half = 1.959964 * math.sqrt((10 / 14) * (4 / 14) / 10 + (5 / 8) * (3 / 8) / 4) / 2
    assert balanced["accuracy"] == pytest.approx(0.775) and balanced["n_classes"] == 2 and balanced["missing"] == ["c"]
    assert balanced["interval"] == pytest.approx((0.775 - half, 0.775 + half), abs=1e-6)


def test_evaluate_reports_every_class_with_its_interval(tmp_path: Path, capsys) -> None:
    # Test split: yes and no of two speakers, bed of two (unknown), one _silence_ clip and one noise cut; always "yes".
    root = make_real_folder(tmp_path / "real", words=("yes", "no", "bed"), silence=True)
    model = export_for(tmp_path / "m", SC12_CLASSES, answer="yes")
    out = tmp_path / "r.json"
    assert evaluate.main(["--model", str(model), "--data", str(root), "--json", str(out)]) == 0
    printed = capsys.readouterr().out
    for key, entry in json.loads(out.read_text())["rates"].items():
        per_class = entry["per_class_accuracy"]
        assert [per_class[name]["correct"] for name in ("yes", "no", "_silence_", "_unknown_")] == [2, 0, 0, 0], key
        assert per_class["up"]["n_clips"] == 0 and per_class["up"]["accuracy"] is None
        assert entry["balanced_accuracy"]["accuracy"] == pytest.approx(1 / 4)  # four classes have clips
        wilson = binomtest(2, 8).proportion_ci(method="wilson")
        assert entry["intervals"]["accuracy"] == pytest.approx([wilson.low, wilson.high])
        no_rejection = binomtest(0, 4).proportion_ci(method="wilson")  # commands: none of the four rejected
        assert entry["intervals"]["commands"]["rejected"] == pytest.approx([no_rejection.low, no_rejection.high])
    assert "accuracy 0.2500 on 8 clips [0.0715, 0.5907]; balanced accuracy 0.2500" in printed
    assert "   yes           1.0000 [0.3424, 1.0000]      2" in printed


def test_training_logs_balanced_validation_accuracy_and_keeps_the_best_by_it(tmp_path: Path, monkeypatch) -> None:
    config = validate({"model": {"kind": "cnn", "n_channels": 4}})
    module = SpeechClassifier(config, n_classes=4)
    logged = {}
    monkeypatch.setattr(module, "log", lambda name, value, **options: logged.__setitem__(name, value))
    answers = iter([torch.tensor([0, 1, 1]), torch.tensor([0, 0])])
    monkeypatch.setattr(module, "inference_model", lambda: lambda waveform: torch.eye(4)[next(answers)])
    module.validation_step((torch.zeros(3, 16000), torch.tensor([0, 0, 1]), None), 0)
    module.validation_step((torch.zeros(2, 16000), torch.tensor([0, 2]), None), 1)
    module.on_validation_epoch_end()
    # Class 0: 2 of 3, class 1: 1 of 1, class 2: 0 of 1, class 3: no clips (left out): (2/3 + 1 + 0) / 3.
    assert float(logged["val_balanced_acc"]) == pytest.approx(5 / 9)
    args = argparse.Namespace(accelerator="cpu", devices="1", num_nodes=1)
    _, best = train.make_trainer(args, config, tmp_path, validates=True)
    assert best.monitor == "val_balanced_acc" and best.mode == "max"
