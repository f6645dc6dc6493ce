"""benchmarks.recipe_score: the validation rule (balanced accuracy over the 12 classes at 16 and 8 kHz, on the
validation split of every folder), checked against a stub model whose every answer is known, computed by hand."""

from __future__ import annotations

import json
import math
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf
import torch
from scipy.stats import binomtest
from test_evaluate import export_for
from torch import nn

from benchmarks import recipe_score
from training.data.speech_commands import SC10_CLASSES, SC12_CLASSES
from training.evaluation.report import paired_comparison

# Every clip is a constant level, 0.01 × its code: the stub reads the code back and answers from a table.
# WAV folder: code 1-10 the ten commands, 11 "bed", 12 the noise recording (silence). FLAC folder: code 1 "yes",
# 13 "up", 14 "cat".
CODES_16K = {**{i + 1: i for i in range(10)}, 11: 11, 12: 10, 13: 3, 14: 0}  # up → down, cat → yes: wrong
CODES_8K = {**CODES_16K, 12: 11}  # and at 8 kHz silence → unknown: wrong


class Stub(nn.Module):
    """Answers by the level of the clip's middle second half: (B, L) → one-hot logits (B, 12)."""

    def __init__(self) -> None:
        super().__init__()
        self.anchor = nn.Parameter(torch.zeros(()))  # where predict_logits finds the device

    def forward(self, waveform: torch.Tensor, dt_scale: float = 1.0) -> torch.Tensor:
        table = CODES_16K if dt_scale == 1.0 else CODES_8K
        return torch.eye(12)[[table[int(code)] for code in codes_of(waveform)]]


def codes_of(waveform: torch.Tensor) -> torch.Tensor:
    """(B, L) → (B,) each clip's code: the level of its middle second half × 100."""
    length = waveform.shape[-1]
    return (waveform[:, length // 4 : 3 * length // 4].median(dim=-1).values * 100).round().long()


def _write(path: Path, code: int, seconds: float = 1.0, **options) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    sf.write(path, np.full(int(16000 * seconds), 0.01 * code), 16000, subtype="PCM_16", **options)


def make_folders(tmp_path: Path) -> tuple[Path, Path]:
    """One training and one validation speaker per word in each folder; the WAV one has the noise recording."""
    real, extra = tmp_path / "real", tmp_path / "extra"
    wav_codes = {**{word: i + 1 for i, word in enumerate(SC10_CLASSES)}, "bed": 11}
    for root, codes, suffix in ((real, wav_codes, "wav"), (extra, {"yes": 1, "up": 13, "cat": 14}, "flac")):
        for word, code in codes.items():
            for speaker in ("aaaa1111", "bbbb2222"):
                _write(root / word / f"{speaker}_nohash_0.{suffix}", code)
        (root / "validation_list.txt").write_text("".join(f"{w}/bbbb2222_nohash_0.wav\n" for w in codes))
        (root / "testing_list.txt").write_text("")
    _write(real / "_background_noise_" / "hum.wav", 12, seconds=12)  # second 10 is the validation cut
    return real, extra


@pytest.fixture()
def stubbed(tmp_path: Path, monkeypatch) -> Path:
    model = export_for(tmp_path / "m", SC12_CLASSES, heard=["bbbb2222"])  # a validated run hears its validators
    meta = json.loads(model.with_suffix(".json").read_text())
    meta["model"] = "s4"  # so that 8 kHz runs with dt_scale 2
    monkeypatch.setattr(recipe_score, "load_model", lambda path: (Stub().eval(), meta))
    return model


def test_score_by_hand(tmp_path: Path, stubbed: Path, capsys) -> None:
    real, extra = make_folders(tmp_path)
    out = tmp_path / "score.json"
    assert recipe_score.main(["--model", str(stubbed), "--data", str(real), str(extra), "--json", str(out)]) == 0
    written = json.loads(out.read_text())
    # Validation clips: every class once in the WAV folder, plus yes, up and cat (unknown) in the FLAC one.
    # 16 kHz: up 1/2 (FLAC up → down), unknown 1/2 (cat → yes), the ten others right: (10 + 2 × 1/2) / 12.
    # 8 kHz: silence 0/1 as well: (9 + 2 × 1/2) / 12. Score: their mean, 21/24.
    correct = {"16000": {"up": 1, "_unknown_": 1}, "8000": {"up": 1, "_unknown_": 1, "_silence_": 0}}
    clips = {name: 2 if name in ("yes", "up", "_unknown_") else 1 for name in SC12_CLASSES}
    for key, balanced in (("16000", 11 / 12), ("8000", 10 / 12)):
        rate = written["rates"][key]
        assert rate["n_clips"] == 15 and rate["balanced_accuracy"]["accuracy"] == pytest.approx(balanced)
        for name in SC12_CLASSES:
            k, n = correct[key].get(name, clips[name]), clips[name]
            figures = rate["per_class_accuracy"][name]
            assert (figures["correct"], figures["n_clips"]) == (k, n) and figures["accuracy"] == pytest.approx(k / n)
            wilson = binomtest(k, n).proportion_ci(method="wilson")
            assert figures["interval"] == pytest.approx([wilson.low, wilson.high])
        # Half-width 1.96 · √(Σ p̃(1 − p̃)/n) / 12, p̃ = (k + 2)/(n + 4): 9 classes at 1 of 1 or 0 of 1 (p̃ 3/5 or
        # 2/5), yes at 2 of 2 (4/6), up and unknown at 1 of 2 (3/6).
        half = 1.959964 * math.sqrt(9 * 0.24 + (4 / 6) * (2 / 6) / 2 + 2 * 0.25 / 2) / 12
        assert rate["balanced_accuracy"]["interval"] == pytest.approx([balanced - half, balanced + half], abs=1e-6)
    assert written["score"] == pytest.approx(21 / 24)
    assert written["interval"] == pytest.approx([21 / 24 - half, 21 / 24 + half], abs=1e-6)
    printed = capsys.readouterr().out
    assert f"score 87.50 [{100 * (21 / 24 - half):.2f}, {100 * (21 / 24 + half):.2f}] (95%)" in printed
    assert "validation speakers of real + extra: 15 clips" in printed


def test_one_folder_and_the_results_folder(tmp_path: Path, stubbed: Path, monkeypatch, capsys) -> None:
    monkeypatch.setattr("benchmarks.common.RESULTS", tmp_path / "results")
    real, _ = make_folders(tmp_path)
    assert recipe_score.main(["--model", str(stubbed), "--data", str(real)]) == 0
    written = json.loads(next((tmp_path / "results").glob("recipe-score-m-*.json")).read_text())
    assert written["data"] == ["real"] and written["rates"]["16000"]["n_clips"] == 12
    assert written["score"] == pytest.approx((1 + 11 / 12) / 2)  # the WAV folder alone: only silence at 8 kHz wrong


def test_refuses_what_the_rule_cannot_score(tmp_path: Path, stubbed: Path, monkeypatch, capsys) -> None:
    real, extra = make_folders(tmp_path)
    assert recipe_score.main(["--model", str(stubbed), "--data", str(extra)]) == 2  # no silence, six commands
    assert "has no clips of no, down, left, right, on, off, stop, go, _silence_" in capsys.readouterr().err
    _, meta = recipe_score.load_model(stubbed)
    meta["config"] = {"data": {"train_on": ["train", "validation"]}}
    assert recipe_score.main(["--model", str(stubbed), "--data", str(real)]) == 2
    assert "trained on the validation speakers too" in capsys.readouterr().err
    monkeypatch.undo()
    ten = export_for(tmp_path / "ten", SC10_CLASSES)
    assert recipe_score.main(["--model", str(ten), "--data", str(real)]) == 2
    assert "the rule scores 12-class models" in capsys.readouterr().err


@pytest.mark.parametrize(("only_a", "only_b", "same"), [(0, 0, 3), (1, 2, 4), (0, 5, 1), (7, 2, 0), (20, 9, 5)])
def test_paired_comparison_is_the_exact_two_sided_binomial_test(only_a: int, only_b: int, same: int) -> None:
    right_a = [True] * only_a + [False] * only_b + [True] * same + [False]
    right_b = [False] * only_a + [True] * only_b + [True] * same + [False]
    paired = paired_comparison(right_a, right_b)
    assert (paired["only_a"], paired["only_b"], paired["n_clips"]) == (only_a, only_b, len(right_a))
    assert paired["right"] == [only_a + same, only_b + same]
    expected = binomtest(only_b, only_a + only_b).pvalue if only_a + only_b else 1.0
    assert paired["p"] == pytest.approx(expected)
    with pytest.raises(ValueError, match="the same clips"):
        paired_comparison(right_a, right_b[:-1])


class BetterStub(Stub):
    """The stub with the FLAC folder's up and cat answered right at 16 kHz (8 kHz as the stub)."""

    def forward(self, waveform: torch.Tensor, dt_scale: float = 1.0) -> torch.Tensor:
        logits = super().forward(waveform, dt_scale)
        if dt_scale == 1.0:
            codes = codes_of(waveform)
            logits[codes == 13] = torch.eye(12)[2]  # up
            logits[codes == 14] = torch.eye(12)[11]  # cat: not a command
        return logits


def test_against_compares_two_models_clip_by_clip(tmp_path: Path, stubbed: Path, monkeypatch, capsys) -> None:
    real, extra = make_folders(tmp_path)
    other = export_for(tmp_path / "other", SC12_CLASSES, heard=["bbbb2222"])
    meta = json.loads(stubbed.with_suffix(".json").read_text())
    meta["model"] = "s4"
    monkeypatch.setattr(recipe_score, "load_model", lambda path: (Stub() if path == stubbed else BetterStub(), meta))
    out = tmp_path / "score.json"
    args = ["--model", str(stubbed), "--data", str(real), str(extra), "--against", str(other), "--json", str(out)]
    assert recipe_score.main(args) == 0
    against = json.loads(out.read_text())["against"]
    # 15 validation clips; at 16 kHz the stub misses up and cat of the FLAC folder, which the other gets right.
    assert against["rates"]["16000"] == {"right": [13, 15], "n_clips": 15, "only_a": 0, "only_b": 2, "p": 0.5}
    assert against["rates"]["8000"] == {"right": [12, 12], "n_clips": 15, "only_a": 0, "only_b": 0, "p": 1.0}
    assert "16000 Hz against" in capsys.readouterr().out
    meta_ten = {**meta, "classes": list(SC10_CLASSES)}
    monkeypatch.setattr(recipe_score, "load_model", lambda path: (Stub(), meta if path == stubbed else meta_ten))
    assert recipe_score.main(args) == 2
    assert f"{other}: the rule scores 12-class models" in capsys.readouterr().err
