"""benchmarks.paired: two models clip by clip on the same test clips (leak guard over both), checked against the
stub models of tests/test_recipe_score.py, whose every answer is known."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from test_evaluate import export_for
from test_recipe_score import BetterStub, Stub, _write, make_folders

from benchmarks import paired
from training.data.speech_commands import SC10_CLASSES, SC12_CLASSES

TEST_WORDS = {"yes": 1, "up": 13, "cat": 14}  # the FLAC folder's codes: the stub gets up and cat wrong at 16 kHz


@pytest.fixture()
def folder(tmp_path: Path) -> Path:
    """The FLAC folder of test_recipe_score with two test speakers, each saying yes, up and cat."""
    _, extra = make_folders(tmp_path)
    lines = []
    for speaker in ("cccc3333", "dddd4444"):
        for word, code in TEST_WORDS.items():
            _write(extra / word / f"{speaker}_nohash_0.flac", code, format="FLAC")
            lines.append(f"{word}/{speaker}_nohash_0.flac\n")
    (extra / "testing_list.txt").write_text("".join(lines))
    return extra


def stubs(tmp_path: Path, monkeypatch, other_classes=SC12_CLASSES) -> tuple[Path, Path]:
    """Model A (the stub, heard nobody here) and model B (the better stub, heard test speaker dddd4444)."""
    a = export_for(tmp_path / "a", SC12_CLASSES, heard=[])
    b = export_for(tmp_path / "b", other_classes, heard=["dddd4444"])
    metas = {path: {**json.loads(path.with_suffix(".json").read_text()), "model": "s4"} for path in (a, b)}
    models = {a: Stub(), b: BetterStub()}
    monkeypatch.setattr(paired, "load_model", lambda path: (models[path].eval(), metas[path]))
    return a, b


def test_paired_counts_by_hand(tmp_path: Path, folder: Path, monkeypatch, capsys) -> None:
    a, b = stubs(tmp_path, monkeypatch)
    out = tmp_path / "paired.json"
    assert paired.main(["--model", str(a), "--against", str(b), "--data", str(folder), "--json", str(out)]) == 0
    result = json.loads(out.read_text())
    assert result["n_excluded"] == 3  # dddd4444, heard by B, is scored for neither
    rates = result["rates"]
    # 16 kHz: yes right for both; up and cat right only for B. Commands: yes and up.
    assert rates["16000"]["all"] == {"right": [1, 3], "n_clips": 3, "only_a": 0, "only_b": 2, "p": 0.5}
    assert rates["16000"]["commands"] == {"right": [1, 2], "n_clips": 2, "only_a": 0, "only_b": 1, "p": 1.0}
    assert rates["8000"]["all"] == {"right": [1, 1], "n_clips": 3, "only_a": 0, "only_b": 0, "p": 1.0}
    printed = capsys.readouterr().out
    assert "16000 Hz, all     : right 1 vs 3 of 3" in printed and "3 clips of speakers either heard" in printed


def test_models_that_cannot_answer_the_same_clips_are_refused(tmp_path: Path, folder: Path, monkeypatch, capsys):
    a, b = stubs(tmp_path, monkeypatch, other_classes=SC10_CLASSES)
    assert paired.main(["--model", str(a), "--against", str(b), "--data", str(folder)]) == 2
    assert "differ in classes or sample rate" in capsys.readouterr().err
    assert paired.main(["--model", str(a), "--against", str(b), "--data", str(tmp_path / "nowhere")]) == 2
    assert "does not exist" in capsys.readouterr().err
