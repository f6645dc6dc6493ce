"""training.calibrate: the rejection offset is the best one that meets the floor, lives in the decoder bias,
is recorded in the model's JSON, is undone before a second calibration, and `training.train` applies it."""

from __future__ import annotations

import json
import logging
from pathlib import Path

import numpy as np
import pytest
import torch
import yaml
from test_evaluate import export_for, make_real_folder
from test_train import TINY

from training.data.speech_commands import SC10_CLASSES, SC12_CLASSES, SILENCE, UNKNOWN, SpeechCommands
from training.fitting import calibrate, train
from training.fitting.config import ConfigError, validate
from training.serving.export import load_model
from training.serving.inference import dataset_logits

YES, NO, SIL, UNK = (SC12_CLASSES.index(name) for name in ("yes", "no", SILENCE, UNKNOWN))


def logits_for(rows: list[dict[int, float]]) -> np.ndarray:
    """(n, 12) logits, -10 everywhere except the given {class: logit} of each row."""
    logits = np.full((len(rows), len(SC12_CLASSES)), -10.0, dtype=np.float32)
    for i, row in enumerate(rows):
        for index, value in row.items():
            logits[i, index] = value
    return logits


# Commands: a clear "yes"; a "no" rejected unless b < -0.52; a "yes" heard as "no" (rejected once b > 1).
# Non-commands: an unknown word rejected once b > 0.2; a silence rejected while b > -2.
LABELS = np.array([YES, NO, YES, UNK, SIL])
ROWS = [{YES: 3.0}, {NO: 1.0, UNK: 1.52}, {NO: 2.0, YES: 0.0, UNK: 1.0}, {UNK: 1.0, YES: 1.2}, {SIL: 2.0, NO: 0.0}]


def test_offset_figures_follow_the_shifted_decisions() -> None:
    logits = {"16000": logits_for(ROWS)}
    at_zero = calibrate.offset_figures(LABELS, logits, SC12_CLASSES, 0.0)["16000"]
    assert at_zero["commands"] == {"accuracy": pytest.approx(1 / 3), "rejected": pytest.approx(1 / 3), "n_clips": 3}
    assert at_zero["non_commands"]["rejected"] == 0.5
    lowered = calibrate.offset_figures(LABELS, logits, SC12_CLASSES, -0.6)["16000"]  # the "no" is heard as "no"
    assert lowered["commands"]["accuracy"] == pytest.approx(2 / 3) and lowered["commands"]["rejected"] == 0.0
    assert lowered["non_commands"]["rejected"] == 0.5
    raised = calibrate.offset_figures(LABELS, logits, SC12_CLASSES, 0.5)["16000"]  # the unknown word is rejected
    assert raised["commands"]["accuracy"] == pytest.approx(1 / 3) and raised["non_commands"]["rejected"] == 1.0


@pytest.mark.parametrize(("floor", "expected"), [(0.5, -0.55), (1.0, 0.25)])
def test_choose_offset_is_the_best_accuracy_that_meets_the_floor(floor: float, expected: float) -> None:
    # Floor 0.5 (the silence, b > -2): accuracy 2/3 for b in (-2, -0.55], all rejecting half: nearest 0 wins.
    # Floor 1.0: the unknown word too (b ≥ 0.25), which leaves the "no" rejected: accuracy 1/3, nearest 0.
    chosen = calibrate.choose_offset(LABELS, {"16000": logits_for(ROWS)}, SC12_CLASSES, floor)
    assert chosen == pytest.approx(expected)


def test_the_floor_holds_at_every_rate() -> None:
    harder = [dict(row) for row in ROWS]
    harder[3] = {UNK: 1.0, YES: 1.4}  # at the second rate the unknown word needs b > 0.4
    logits = {"16000": logits_for(ROWS), "8000": logits_for(harder)}
    assert calibrate.choose_offset(LABELS, logits, SC12_CLASSES, 1.0) == pytest.approx(0.45)


# (labels, logits, floor, the offset chosen). Each case sets two tie-breaks against each other: swapping them, or
# putting nearness to 0 first, chooses another offset. With floor 1 no offset rejects the unknown word (9 below
# "yes"): the fallback ranks rejection, then accuracy, then nearness. In every case the silence is rejected above
# some b, and the "no", where there is one, is right up to b = -1 only.
SURE_YES, NO_UP_TO_MINUS_1, UNK_NEVER = {YES: 3.0}, {NO: 0.0, UNK: 1.0}, {YES: 9.0, UNK: 0.0}
FOUR_CLIPS = [YES, NO, UNK, SIL]
TIE_BREAKS = {
    # The unknown word is rejected from 0.55: rejection first would give 0.55, nearness first 0.0.
    "accuracy, then rejection": (FOUR_CLIPS, [SURE_YES, NO_UP_TO_MINUS_1, {UNK: 0.0, YES: 0.5}, {SIL: 5.0}], 0.5, -1.0),
    # Accuracy equal everywhere, the unknown word rejected from 1.05: nearness first would give 0.0.
    "rejection, then nearness": ([YES, UNK, SIL], [SURE_YES, {UNK: 0.0, YES: 1.0}, {SIL: 5.0}], 0.5, 1.05),
    # Unreachable floor, the silence rejected from 1.05 only: accuracy first would give -1.0, nearness first 0.0.
    "fallback: rejection, then accuracy": (
        FOUR_CLIPS,
        [SURE_YES, NO_UP_TO_MINUS_1, UNK_NEVER, {SIL: 0.0, NO: 1.0}],
        1.0,
        1.05,
    ),
    # Unreachable floor, the silence rejected from -1.95: nearness before accuracy would give 0.0.
    "fallback: accuracy, then nearness": (
        FOUR_CLIPS,
        [SURE_YES, NO_UP_TO_MINUS_1, UNK_NEVER, {SIL: 2.0, NO: 0.0}],
        1.0,
        -1.0,
    ),
}


@pytest.mark.parametrize("case", TIE_BREAKS)
def test_tie_break_order(case: str, caplog) -> None:
    labels, rows, floor, expected = TIE_BREAKS[case]
    with caplog.at_level(logging.WARNING, logger="training.calibrate"):
        chosen = calibrate.choose_offset(np.array(labels), {"16000": logits_for(rows)}, SC12_CLASSES, floor)
    assert chosen == pytest.approx(expected) and ("no offset rejects" in caplog.text) == case.startswith("fallback")


def test_an_unreachable_floor_takes_the_most_rejecting_offset(caplog) -> None:
    rows = [{YES: 3.0}, {NO: 1.0}, {YES: 1.0}, {YES: 9.0, UNK: 0.0}, {SIL: 2.0}]  # the unknown word: 9 below "yes"
    with caplog.at_level(logging.WARNING, logger="training.fitting.calibrate"):
        chosen = calibrate.choose_offset(LABELS, {"16000": logits_for(rows)}, SC12_CLASSES, 1.0)
    assert chosen == 0.0 and "no offset rejects 100%" in caplog.text  # half rejected for any b > -2: nearest 0


def test_no_rejection_classes_or_no_non_commands_are_errors() -> None:
    with pytest.raises(ValueError, match="_silence_"):
        calibrate.offset_figures(np.array([0]), {"16000": np.zeros((1, 10))}, SC10_CLASSES, 0.0)
    with pytest.raises(ValueError, match="non-command clips"):
        calibrate.choose_offset(np.array([YES]), {"16000": logits_for([{YES: 1.0}])}, SC12_CLASSES, 0.9)
    with pytest.raises(ValueError, match="no decoder bias"):
        calibrate.set_offset(torch.nn.Sequential(torch.nn.Linear(2, 12)), SC12_CLASSES, 1.0)


def test_set_offset_moves_only_the_rejection_logits() -> None:
    model = torch.nn.Module()
    model.decoder = torch.nn.Linear(3, 12)
    before = model.decoder.bias.detach().clone()
    calibrate.set_offset(model, SC12_CLASSES, 0.75, previous=0.25)
    change = model.decoder.bias.detach() - before
    assert torch.allclose(change[[SIL, UNK]], torch.tensor(0.5)) and not change[:SIL].any()


def test_cli_records_the_offset_and_calibrating_twice_is_calibrating_once(tmp_path: Path, capsys) -> None:
    root = make_real_folder(tmp_path / "real", words=("yes", "no", "bed"), silence=True)
    path = export_for(tmp_path / "m", SC12_CLASSES)
    original, meta = load_model(path)
    args = ["--model", str(path), "--data", str(root), "--min-non-commands-rejected", "0.5"]
    assert calibrate.main(args) == 0
    assert "rejection offset" in capsys.readouterr().out
    once, meta = load_model(path)
    record = meta["calibration"]
    assert record["split"] == "validation" and record["rates"] == [16000, 8000]
    assert record["min_non_commands_rejected"] == 0.5 and set(record["after"]) == {"16000", "8000"}
    assert meta["config"]["calibration"] == {"min_non_commands_rejected": 0.5}
    test = SpeechCommands(root, "sc12", "test", 16000)
    labels, logits = dataset_logits(once, meta, test, [("8000", 8000, True)])
    tested = calibrate.offset_figures(labels, logits, SC12_CLASSES, 0.0)["8000"]  # the metrics are measured again
    assert meta["metrics"]["test_commands_acc_8000"] == tested["commands"]["accuracy"]
    assert meta["metrics"]["test_non_commands_rejected_8000"] == tested["non_commands"]["rejected"]
    shift = once.decoder.bias.detach() - original.decoder.bias.detach()
    assert torch.allclose(shift[[SIL, UNK]], torch.tensor(record["offset"])) and not shift[:SIL].any()

    validation = SpeechCommands(root, "sc12", "validation", 16000)
    labels, logits = dataset_logits(once, meta, validation, [("16000", 16000, True)])
    decided = calibrate.offset_figures(labels, logits, SC12_CLASSES, 0.0)["16000"]
    assert decided == record["after"]["16000"]  # the exported model decides what the record says

    assert calibrate.main(args) == 0
    twice, meta_twice = load_model(path)
    assert meta_twice["calibration"]["offset"] == record["offset"]
    assert torch.allclose(twice.decoder.bias, once.decoder.bias)


def test_cli_errors_are_one_line(tmp_path: Path, capsys) -> None:
    root = make_real_folder(tmp_path / "real")
    ten = export_for(tmp_path / "m", SC10_CLASSES)
    assert calibrate.main(["--model", str(ten), "--data", str(root)]) == 2
    assert capsys.readouterr().err.count("\n") == 1
    assert calibrate.main(["--model", str(ten), "--data", str(tmp_path / "nowhere")]) == 2
    assert "nowhere" in capsys.readouterr().err


@pytest.mark.parametrize(
    ("calibration", "subset", "fragment"),
    [
        ({"min_non_commands_rejected": 1.5}, "sc12", "fraction"),
        ({"min_non_commands_rejected": 0.8}, "sc10", "sc12"),
        ({"offset": "low"}, "sc12", "must be a number"),
        ({"offset": -0.5, "min_non_commands_rejected": 0.8}, "sc12", "instead of"),
        ({"offset": -0.5}, "sc10", "sc12"),
    ],
)
def test_bad_calibration_config(calibration: dict, subset: str, fragment: str) -> None:
    with pytest.raises(ConfigError, match=fragment):
        validate({**TINY, "data": {"subset": subset}, "calibration": calibration})


def test_training_without_non_commands_to_calibrate_on_stops_before_it_starts(tmp_path: Path, capsys) -> None:
    root = make_real_folder(tmp_path / "real", words=("yes", "no"))  # sc12 classes, but commands only
    config = {**TINY, "data": {"subset": "sc12"}, "calibration": {"min_non_commands_rejected": 0.5}}
    (tmp_path / "c.yaml").write_text(yaml.safe_dump(config))
    out = tmp_path / "run"
    assert train.main(["--config", str(tmp_path / "c.yaml"), "--data", str(root), "--out", str(out)]) == 2
    error = capsys.readouterr().err
    assert error.count("\n") == 1 and "commands only" in error and str(root) in error
    assert not (out / "checkpoints").exists()


def test_training_calibrates_before_it_exports(tmp_path: Path) -> None:
    root = make_real_folder(tmp_path / "real", words=("yes", "no", "bed"), silence=True)
    config = {**TINY, "data": {"subset": "sc12", "batch_size": 4}, "calibration": {"min_non_commands_rejected": 0.5}}
    (tmp_path / "c.yaml").write_text(yaml.safe_dump(config))
    out = tmp_path / "run"
    args = ["--config", str(tmp_path / "c.yaml"), "--data", str(root), "--out", str(out), "--max-steps", "2"]
    assert train.main(args) == 0
    meta = json.loads((out / "model.json").read_text())
    assert meta["calibration"]["min_non_commands_rejected"] == 0.5
    assert meta["calibration"]["offset"] in calibrate.OFFSETS


@pytest.mark.parametrize(
    ("data", "calibration", "scheduler", "fragment"),
    [
        ({"train_on": ["validation"]}, {}, {}, "must be a list holding 'train'"),
        ({"train_on": ["train", "test"]}, {}, {}, "must be a list holding 'train'"),
        ({"train_on": "train"}, {}, {}, "must be a list"),
        ({"train_on": ["train", "validation"]}, {"min_non_commands_rejected": 0.8}, {}, "calibration.offset"),
        ({"train_on": ["train", "validation"]}, {}, {"name": "plateau"}, "val_balanced_acc"),
    ],
)
def test_bad_final_fit_config(data: dict, calibration: dict, scheduler: dict, fragment: str) -> None:
    config = {**TINY, "data": {"subset": "sc12", **data}, "calibration": calibration, "scheduler": scheduler}
    with pytest.raises(ConfigError, match=fragment):
        validate(config)


def test_final_fit_trains_on_validation_too_and_applies_the_fixed_offset(tmp_path: Path) -> None:
    root = make_real_folder(tmp_path / "real", words=("yes", "no", "bed"), silence=True)
    config = {
        **TINY,
        "data": {"subset": "sc12", "batch_size": 4, "train_on": ["train", "validation"]},
        "calibration": {"offset": -0.75},
    }
    (tmp_path / "c.yaml").write_text(yaml.safe_dump(config))
    out = tmp_path / "run"
    args = ["--config", str(tmp_path / "c.yaml"), "--data", str(root), "--out", str(out), "--max-steps", "2"]
    assert train.main(args) == 0
    meta = json.loads((out / "model.json").read_text())
    assert meta["calibration"] == {"offset": -0.75, "split": None}
    validation = SpeechCommands(root, "sc12", "validation")
    speakers = {Path(path).name.split("_nohash_")[0] for path in validation.paths if "_nohash_" in path}
    assert speakers and speakers <= set(meta["data"]["heard_speakers"])
    assert not list((out / "checkpoints").glob("best-*"))  # no validation loop: the last epoch is exported
    last = torch.load(out / "checkpoints" / "last.ckpt", map_location="cpu", weights_only=False)
    assert last["global_step"] == 2
    # The export is the last checkpoint's weights with the offset in the rejection biases, and nothing else moved.
    model, _ = load_model(out / "model.safetensors")
    bias = last["state_dict"]["model.decoder.bias"]
    shift = torch.zeros_like(bias)
    shift[[SIL, UNK]] = -0.75
    torch.testing.assert_close(model.decoder.bias, bias + shift)


def test_final_fit_batches_hold_training_and_validation_clips(tmp_path: Path) -> None:
    from training.fitting.datamodule import SpeechCommandsDataModule

    root = make_real_folder(tmp_path / "real", words=("yes", "no", "bed"), silence=True)
    split = {part: SpeechCommands(root, "sc12", part) for part in ("train", "validation")}
    both = SpeechCommandsDataModule(root, subset="sc12", train_on=["train", "validation"], batch_size=64)
    both.setup("fit")
    paths = [path for batch in both.train_dataloader() for path in batch[2]]
    assert sorted(paths) == sorted(split["train"].paths + split["validation"].paths)
    assert both.val_dataloader() == [] and not both.validates
    with pytest.raises(ValueError, match="train_on"):
        SpeechCommandsDataModule(root, subset="sc12", train_on=["validation"])


def test_cli_refuses_a_model_that_trained_on_the_validation_speakers(tmp_path: Path, capsys) -> None:
    root = make_real_folder(tmp_path / "real", words=("yes", "no", "bed"), silence=True)
    path = export_for(tmp_path / "m", SC12_CLASSES)
    meta = json.loads(path.with_suffix(".json").read_text())
    meta["config"] = {"data": {"train_on": ["train", "validation"]}}
    path.with_suffix(".json").write_text(json.dumps(meta))
    assert calibrate.main(["--model", str(path), "--data", str(root)]) == 2
    assert "trained on the validation speakers" in capsys.readouterr().err
