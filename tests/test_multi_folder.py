"""Training on two Speech Commands folders at once (one of them FLAC, without silence or noise): each folder's
own splits, one class mapping, background noise from the folder that has it, the leak guard over both folders'
speakers and each folder's provenance in the export."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf
import torch
import yaml
from test_evaluate import SPEAKERS, export_for, make_real_folder

from training.data.speech_commands import SC12_CLASSES, Folders, SpeechCommands, open_split
from training.evaluation import evaluate
from training.fitting import calibrate, train
from training.fitting.config import ConfigError, validate
from training.fitting.datamodule import SpeechCommandsDataModule
from training.fitting.lightning_module import SpeechClassifier
from training.serving.export import load_model
from training.serving.inference import dataset_logits

# The FLAC folder: two training speakers (the first is also a test speaker of the WAV folder: the one overlap that
# shows the leak guard reaching across folders), one validation speaker; an empty testing list, as in v0.01's copy.
EXTRA_SPEAKERS = (SPEAKERS[3], "9a8b7c6d", "8b7c6d5e")  # train, train, validation
EXTRA_WORDS = ("yes", "up", "cat")
SHORT = 11000  # samples of the shortest FLAC clips: under one second, padded with zeros
CNN = {"kind": "cnn", "n_channels": 4}


def make_flac_folder(root: Path) -> Path:
    for word in EXTRA_WORDS:
        (root / word).mkdir(parents=True)
        for k, speaker in enumerate(EXTRA_SPEAKERS):
            length = SHORT if word == "up" else 16000
            wave = 0.2 * np.sin(np.arange(length) * (0.02 + 0.01 * k))
            sf.write(root / f"{word}/{speaker}_nohash_0.flac", wave, 16000, format="FLAC", subtype="PCM_16")
    (root / "validation_list.txt").write_text("".join(f"{w}/{EXTRA_SPEAKERS[2]}_nohash_0.wav\n" for w in EXTRA_WORDS))
    (root / "testing_list.txt").write_text("")
    return root


@pytest.fixture()
def folders(tmp_path: Path) -> tuple[Path, Path]:
    # The WAV folder: yes, no, bed of SPEAKERS (0, 1 train; 2 validation; 3, 4 test), two _silence_ clips (one
    # testing) and a 12 s noise recording (10 training, 1 validation, 1 testing one-second cuts).
    real = make_real_folder(tmp_path / "real", words=("yes", "no", "bed"), silence=True)
    return real, make_flac_folder(tmp_path / "extra")


def _clips(root: Path, words, speakers, suffix: str) -> set[str]:
    return {str(root / f"{w}/{s}_nohash_0.{suffix}") for w in words for s in speakers}


def _cuts(root: Path, seconds) -> set[str]:
    return {str(root / f"_background_noise_/hum.wav#{k}") for k in seconds}


def test_each_folder_keeps_its_own_splits(folders) -> None:
    real, extra = folders
    words = ("yes", "no", "bed")
    expected = {
        "train": _clips(real, words, SPEAKERS[:2], "wav") | {str(real / "_silence_/1037.wav")} | _cuts(real, range(10))
        | _clips(extra, EXTRA_WORDS, EXTRA_SPEAKERS[:2], "flac"),
        "validation": _clips(real, words, SPEAKERS[2:3], "wav") | _cuts(real, [10])
        | _clips(extra, EXTRA_WORDS, EXTRA_SPEAKERS[2:], "flac"),
        "test": _clips(real, words, SPEAKERS[3:], "wav") | {str(real / "_silence_/1043.wav")} | _cuts(real, [11]),
    }  # fmt: skip
    for split, paths in expected.items():
        both = open_split([real, extra], "sc12", split)
        assert isinstance(both, Folders) and sorted(both.paths) == sorted(paths), split
        assert len(both) == len(paths) == len(both.labels)
    single = open_split([real], "sc12", "train")
    assert isinstance(single, SpeechCommands) and single.paths == SpeechCommands(real, "sc12", "train").paths


def test_every_folder_maps_its_words_alike(folders) -> None:
    both = open_split(list(folders), "sc12", "train")
    by_word = {"yes": 0, "no": 1, "up": 2, "bed": 11, "cat": 11, "_silence_": 10, "_background_noise_": 10}
    assert both.classes == SC12_CLASSES
    for path, label in zip(both.paths, both.labels, strict=True):
        assert label == by_word[Path(path).parent.name], path
    assert sorted(set(both.labels)) == [0, 1, 2, 10, 11]


def test_flac_clips_load_and_short_ones_are_padded(folders) -> None:
    _, extra = folders
    both = open_split(list(folders), "sc12", "train")
    index = both.paths.index(str(extra / f"up/{EXTRA_SPEAKERS[0]}_nohash_0.flac"))
    wave, label, _ = both[index]
    written = 0.2 * np.sin(np.arange(SHORT) * 0.02)
    assert wave.shape == (16000,) and label == 2
    np.testing.assert_allclose(wave[:SHORT].numpy(), written, atol=1 / 32768)  # 16-bit FLAC: lossless but quantised
    assert torch.count_nonzero(wave[SHORT:]) == 0


def test_data_module_concatenates_and_takes_noise_from_the_folder_that_has_it(folders) -> None:
    real, extra = folders
    module = SpeechCommandsDataModule([real, extra], subset="sc12", batch_size=64, augment=True)
    module.setup("fit")
    paths = [path for batch in module.train_dataloader() for path in batch[2]]
    assert sorted(paths) == sorted(open_split([real, extra], "sc12", "train").paths)
    assert module.class_counts == [4, 2, 2, 0, 0, 0, 0, 0, 0, 0, 11, 4]  # yes, no, up; silence; bed + cat
    (noise,) = module._noises()  # the hum's training part, ten seconds; the FLAC folder has none
    hum = sf.read(real / "_background_noise_/hum.wav", dtype="float32")[0]
    torch.testing.assert_close(noise, torch.from_numpy(hum[: 10 * 16000]))


def _config(**data) -> dict:
    return validate({"model": CNN, "data": {"subset": "sc12", **data}, "test_rates": [16000, 8000]})


def test_heard_speakers_of_both_folders_guard_evaluation_of_either(folders, tmp_path: Path, capsys) -> None:
    real, extra = folders
    record = train.data_record(_config(provenance={"real": "P1", "extra": "P2"}), [real, extra], 16000)
    assert record["heard_speakers"] == sorted([*SPEAKERS[:3], *EXTRA_SPEAKERS])
    model = export_for(tmp_path / "m", SC12_CLASSES, heard=record["heard_speakers"])
    _, meta = load_model(model)
    # Its FLAC training speaker is a test speaker of the WAV folder: exactly that speaker's three test clips go.
    test = SpeechCommands(real, "sc12", "test")
    excluded = {test.paths[i] for i in evaluate.heard_clips(meta, test)}
    assert excluded == _clips(real, ("yes", "no", "bed"), SPEAKERS[3:4], "wav")
    validation = SpeechCommands(extra, "sc12", "validation")
    assert len(evaluate.heard_clips(meta, validation)) == len(validation) == 3
    out = tmp_path / "r.json"
    assert evaluate.main(["--model", str(model), "--data", str(real), "--json", str(out)]) == 0
    document = json.loads(out.read_text())
    assert document["excluded"] == 3 and document["rates"]["16000"]["n_clips"] == len(test) - 3
    assert "on 5 clips" in capsys.readouterr().out  # three clips of the unheard speaker, one silence, one cut


def test_export_lists_each_folders_provenance(folders, tmp_path: Path) -> None:
    real, extra = folders
    config = _config(provenance={"real": "v0.02 test partition", "extra": "v0.01"})
    data = SpeechCommandsDataModule([real, extra], subset="sc12", batch_size=8)
    model = SpeechClassifier(config, len(data.classes)).inference_model()
    (tmp_path / "run").mkdir()
    exported = train.export_and_test(model, config, data, [real, extra], tmp_path / "run")
    meta = json.loads(exported.with_suffix(".json").read_text())
    record = meta["data"]
    described = "Speech Commands folder (no manifest.json)"
    assert record["folders"] == [
        {"root": "real", "synthetic": False, "description": described, "provenance": "v0.02 test partition"},
        {"root": "extra", "synthetic": False, "description": described, "provenance": "v0.01"},
    ]
    assert record["root"] == "real+extra" and record["synthetic"] is False and record["subset"] == "sc12"
    assert record["provenance"] == "real: v0.02 test partition; extra: v0.01"
    assert record["heard_speakers"] == sorted([*SPEAKERS[:3], *EXTRA_SPEAKERS])
    assert str(tmp_path) not in json.dumps(meta)  # folder names only, no machine paths
    tested = json.loads((tmp_path / "run" / "test_metrics.json").read_text())
    assert tested["16000"]["n_clips"] == 8 - 3  # the WAV folder's test split less its heard speaker: FLAC has none


@pytest.mark.parametrize(
    ("provenance", "message"),
    [
        ("one text", "one text for 2 folders"),
        ({"real": "a", "elsewhere": "b"}, "names elsewhere, not among the data folders"),
    ],
)
def test_provenance_must_name_the_folders(folders, provenance, message) -> None:
    with pytest.raises(ConfigError, match=message):
        train.data_record(_config(provenance=provenance), list(folders), 16000)


def test_cli_trains_on_both_folders_from_the_command_line_or_the_config(folders, tmp_path: Path, capsys) -> None:
    real, extra = folders
    config = {"model": CNN, "data": {"subset": "sc12", "batch_size": 4, "provenance": {"real": "a", "extra": "b"}}}
    config["trainer"] = {"max_epochs": 1, "log_every_n_steps": 1}
    path = tmp_path / "two.yaml"
    path.write_text(yaml.safe_dump(config))
    common = ["--config", str(path), "--max-steps", "2"]
    assert train.main([*common, "--data", str(real), str(extra), "--out", str(tmp_path / "cli")]) == 0
    config["data"]["folders"] = [str(real), str(extra)]
    path.write_text(yaml.safe_dump(config))
    assert train.main([*common, "--out", str(tmp_path / "cfg")]) == 0
    for run in ("cli", "cfg"):
        record = load_model(tmp_path / run / "model.json")[1]["data"]
        assert [folder["root"] for folder in record["folders"]] == ["real", "extra"], run
    assert train.main([*common, "--data", str(real), str(real), "--out", str(tmp_path / "twice")]) == 2
    assert "given more than once: real" in capsys.readouterr().err
    del config["data"]["folders"]
    path.write_text(yaml.safe_dump(config))
    assert train.main([*common, "--out", str(tmp_path / "none")]) == 2
    assert "no data: pass --data FOLDER [FOLDER ...] or set data.folders" in capsys.readouterr().err
    with pytest.raises(ConfigError, match="data.folders must be a non-empty list"):
        validate({"data": {"folders": str(real)}})


def test_calibration_chooses_the_offset_on_both_folders_validation_speakers(folders, tmp_path: Path) -> None:
    """`training.calibrate --data REAL EXTRA` (a joined ensemble is calibrated so): the record counts the
    validation clips of both folders, and the exported model decides on them what the record says."""
    real, extra = folders
    path = export_for(tmp_path / "m", SC12_CLASSES)
    assert calibrate.main(["--model", str(path), "--data", str(real), str(extra), "--rates", "16000"]) == 0
    model, meta = load_model(path)
    validation = open_split([real, extra], "sc12", "validation", 16000, "official")
    alone = open_split([real], "sc12", "validation", 16000, "official")
    labels, logits = dataset_logits(model, meta, validation, [("16000", 16000, True)])
    after = meta["calibration"]["after"]["16000"]
    assert after == calibrate.offset_figures(labels, logits, SC12_CLASSES, 0.0)["16000"]
    counted = after["commands"]["n_clips"] + after["non_commands"]["n_clips"]
    assert counted == len(validation) > len(alone)
