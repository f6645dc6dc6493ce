"""benchmarks.recipe_score: the validation speakers' commands, clean and in noise, and the score of the rule."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from test_evaluate import SPEAKERS, export_for, make_real_folder

from benchmarks import recipe_score
from training.data import SC12_CLASSES, SpeechCommands
from training.evaluate import evaluate_model
from training.export import load_model


def test_score_weights_clean_speech_and_zero_db() -> None:
    assert recipe_score.recipe_score([0.9, 0.8], [0.5, 0.3]) == pytest.approx(
        (0.95 * 0.9 + 0.05 * 0.5 + 0.95 * 0.8 + 0.05 * 0.3) / 2
    )
    with pytest.raises(ValueError, match="one clean and one 0 dB figure per rate"):
        recipe_score.recipe_score([0.9, 0.8], [0.5])


@pytest.fixture()
def folder(tmp_path: Path) -> Path:
    # Validation split: yes, no and bed of one speaker, and a one-second cut of the noise recording.
    return make_real_folder(tmp_path / "real", words=("yes", "no", "bed"), silence=True)


def test_scores_the_validation_speakers_it_was_validated_on(folder: Path, tmp_path: Path, capsys, monkeypatch) -> None:
    monkeypatch.setattr("benchmarks.common.RESULTS", tmp_path / "results")
    # Random weights; the validation speaker is listed as heard, as in every validated run's JSON.
    model = export_for(tmp_path / "m", SC12_CLASSES, heard=[SPEAKERS[2]])
    assert recipe_score.main(["--model", str(model), "--data", str(folder), "--snr-db", "5"]) == 0
    written = json.loads(next((tmp_path / "results").glob("recipe-score-m-*.json")).read_text())
    table = written["commands_right"]
    assert list(table) == ["clean", "5", "0"]  # 0 dB is always measured: the rule needs it
    loaded, meta = load_model(model)
    validation = SpeechCommands(folder, "sc12", "validation")
    for level, snr in (("clean", None), ("5", 5.0), ("0", 0.0)):
        direct = evaluate_model(loaded, meta, validation, [16000, 8000], heard=[], snr_db=snr)
        assert table[level] == {key: r["commands"]["accuracy"] for key, r in direct.items()}
        assert all(r["commands"]["n_clips"] == 2 for r in direct.values())  # its heard speaker's commands, scored
    keys = list(table["clean"])
    expected = recipe_score.recipe_score([table["clean"][k] for k in keys], [table["0"][k] for k in keys])
    assert written["score"] == pytest.approx(expected)
    assert f"score {100 * expected:.2f}" in capsys.readouterr().out


def test_refuses_a_final_fit(folder: Path, tmp_path: Path, capsys) -> None:
    model = export_for(tmp_path / "m", SC12_CLASSES)
    meta = json.loads(model.with_suffix(".json").read_text())
    meta["config"] = {"data": {"train_on": ["train", "validation"]}}
    model.with_suffix(".json").write_text(json.dumps(meta))
    assert recipe_score.main(["--model", str(model), "--data", str(folder)]) == 2
    err = capsys.readouterr().err
    assert len(err.strip().splitlines()) == 1 and "trained on the validation speakers too" in err
