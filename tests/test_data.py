"""training.data.speech_commands, .clip_index and training.fitting.datamodule: SpeechCommands on generated and
hand-made folders, the index cache, the data module."""

from __future__ import annotations

import json
import logging
import shutil
from collections import Counter
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf
import torch

import training.data.clip_index as clip_index
import training.data.speech_commands as data
from training.data.speech_commands import (
    SC10_CLASSES,
    SC12_CLASSES,
    SC35_CLASSES,
    SILENCE,
    UNKNOWN,
    SpeechCommands,
    noise_cuts,
)
from training.fitting.datamodule import SpeechCommandsDataModule


def make_folder(root: Path, words=("yes", "no"), per_word=4, lengths=None, held=1) -> Path:
    """A hand-made Speech Commands folder: speaker k says each word once; the last 2·held are held out.

    lengths: clip lengths in samples by speaker index (default 16000).
    """
    root.mkdir(parents=True, exist_ok=True)
    val, test = [], []
    for word in words:
        (root / word).mkdir(exist_ok=True)
        for k in range(per_word):
            n = (lengths or {}).get(k, 16000)
            samples = 0.1 * np.sin(np.arange(n) * (0.05 + 0.01 * k)).astype(np.float32)
            relative = f"{word}/spk{k:02d}_nohash_0.wav"
            sf.write(root / relative, samples, 16000, subtype="PCM_16")
            if k >= per_word - held:
                test.append(relative)
            elif k >= per_word - 2 * held:
                val.append(relative)
    (root / "validation_list.txt").write_text("\n".join(val) + "\n")
    (root / "testing_list.txt").write_text("\n".join(test) + "\n")
    (root / "_background_noise_").mkdir(exist_ok=True)
    sf.write(root / "_background_noise_" / "white.wav", np.random.default_rng(0).uniform(-0.5, 0.5, 20000), 16000)
    return root


def test_class_lists():
    assert SC10_CLASSES == ("yes", "no", "up", "down", "left", "right", "on", "off", "stop", "go")
    assert len(SC35_CLASSES) == 35 and list(SC35_CLASSES) == sorted(SC35_CLASSES)
    assert set(SC10_CLASSES) < set(SC35_CLASSES)


def test_generated_dataset_counts_per_split_and_class(tiny_sc10):
    manifest = json.loads((tiny_sc10 / "manifest.json").read_text())
    expected = {"train": 3, "validation": 1, "testing": 1}
    for split, per_class in expected.items():
        dataset = SpeechCommands(tiny_sc10, "sc10", split)
        assert dataset.classes == SC10_CLASSES
        assert Counter(dataset.labels) == dict.fromkeys(range(10), per_class)
        assert manifest["counts"][split] == dict.fromkeys(SC10_CLASSES, per_class)
        assert dataset.bad_files == []


def test_a_flac_copy_keeps_its_splits(tiny_sc10, tmp_path):
    """The lists name .wav files; a copy converted to FLAC must give the same clips in the same splits."""
    copy = tmp_path / "flac"
    for wav in tiny_sc10.glob("*/*.wav"):
        target = copy / wav.parent.name / (wav.stem + ".flac")
        target.parent.mkdir(parents=True, exist_ok=True)
        samples, rate = sf.read(wav, dtype="int16")
        sf.write(target, samples, rate, format="FLAC")
    for name in ("validation_list.txt", "testing_list.txt"):
        shutil.copy(tiny_sc10 / name, copy / name)
    for split in ("train", "validation", "testing"):
        flac, wav = SpeechCommands(copy, "sc10", split), SpeechCommands(tiny_sc10, "sc10", split)
        assert [Path(p).stem for p in flac.paths] == [Path(p).stem for p in wav.paths]
        assert torch.equal(flac[0][0], wav[0][0])


def test_generated_items_shapes_dtypes_labels(tiny_sc10):
    dataset = SpeechCommands(tiny_sc10, split="train")
    for index in range(0, len(dataset), 7):
        wave, label, path = dataset[index]
        assert wave.shape == (16000,) and wave.dtype == torch.float32
        assert SC10_CLASSES[label] == Path(path).parent.name  # labels follow the documented order
        assert wave.abs().max() > 0.01


def test_8khz_resample_and_decimate(tiny_sc10):
    full = SpeechCommands(tiny_sc10, split="testing")
    resampled = SpeechCommands(tiny_sc10, split="testing", sample_rate=8000)
    decimated = SpeechCommands(tiny_sc10, split="testing", sample_rate=8000, downsample="decimate")
    wave16, label, path = full[0]
    wave_r, label_r, path_r = resampled[0]
    wave_d, _, _ = decimated[0]
    assert wave_r.shape == (8000,) and wave_r.dtype == torch.float32 and wave_d.shape == (8000,)
    assert (label_r, path_r) == (label, path)
    assert torch.equal(wave_d, wave16[::2])
    assert not torch.equal(wave_r, wave_d)  # the anti-aliasing filter changed the samples


def test_official_protocol_on_hand_made_folder(tmp_path):
    root = make_folder(tmp_path / "sc", per_word=5)
    train = SpeechCommands(root, split="train")
    assert len(train) == 6 and Counter(train.labels) == {0: 3, 1: 3}
    assert len(SpeechCommands(root, split="val")) == 2
    assert len(SpeechCommands(root, split="test")) == 2
    assert all("spk0" in Path(p).name and int(Path(p).name[3:5]) < 3 for p in train.paths)


def test_short_clips_are_padded(tmp_path):
    root = make_folder(tmp_path / "sc", per_word=3, lengths={0: 9000})
    dataset = SpeechCommands(root, split="train")
    wave, _, path = dataset[dataset.paths.index(str(root / "yes/spk00_nohash_0.wav"))]
    assert wave.shape == (16000,) and wave[9000:].eq(0).all() and wave[:9000].abs().max() > 0


def test_s4_paper_protocol(tmp_path):
    root = make_folder(tmp_path / "sc", words=SC10_CLASSES, per_word=20, lengths={0: 12000, 1: 15999})
    splits = {s: SpeechCommands(root, split=s, protocol="s4-paper") for s in ("train", "validation", "testing")}
    assert [len(d) for d in splits.values()] == [126, 27, 27]  # 180 full-length clips, 70/15/15
    paths = [set(d.paths) for d in splits.values()]
    assert not (paths[0] & paths[1] or paths[0] & paths[2] or paths[1] & paths[2])
    every = set().union(*paths)
    assert not any("spk00" in p or "spk01" in p for p in every)  # not exactly 16000 samples: excluded
    # Stratified: 18 clips per class → 12-13 / 2-3 / 2-3.
    assert set(Counter(splits["train"].labels).values()) <= {12, 13}
    assert set(Counter(splits["testing"].labels).values()) <= {2, 3}
    again = SpeechCommands(root, split="validation", protocol="s4-paper")
    assert again.paths == splits["validation"].paths
    with pytest.raises(ValueError, match="'s4-paper' is defined for subset 'sc10' only"):
        SpeechCommands(root, subset="sc35", protocol="s4-paper")


def test_sc35_on_a_folder_with_fewer_words_uses_those_present(tmp_path, caplog):
    root = make_folder(tmp_path / "sc", words=("yes", "bed", "no"), per_word=3)
    with caplog.at_level(logging.WARNING):
        dataset = SpeechCommands(root, subset="sc35", split="train")
    assert dataset.classes == ("bed", "no", "yes")
    assert "has 3 of the 35 words" in caplog.text and "backward" in caplog.text


def test_background_noise_and_other_folders_are_not_classes(tiny_sc10):
    dataset = SpeechCommands(tiny_sc10, subset="sc35", split="train")
    assert "_background_noise_" not in dataset.classes and dataset.classes == tuple(sorted(SC10_CLASSES))


NOISE_SECONDS = {"long.wav": (25.5, 16000), "three.wav": (3.5, 8000), "short.wav": (2.9, 16000)}


def make_sc12_folder(root: Path) -> Path:
    """make_folder's yes/no + two other words, `_silence_` clips (one per split) and background noise recordings.

    Noise: 25.5 s (25 cuts: 21 / 2 / 2), 3.5 s at 8 kHz (3 cuts: 1 / 1 / 1), 2.9 s and make_folder's 1.25 s (none).
    """
    make_folder(root, words=("yes", "no", "bed", "cat"), per_word=4)
    (root / SILENCE).mkdir()
    for name in ("1037.wav", "1041.wav", "1043.wav", "1050.wav"):
        sf.write(root / SILENCE / name, np.zeros(16000, dtype=np.float32), 16000, subtype="PCM_16")
    with open(root / "validation_list.txt", "a") as lists:
        lists.write(f"{SILENCE}/1041.wav\n")
    with open(root / "testing_list.txt", "a") as lists:
        lists.write(f"{SILENCE}/1043.wav\n")
    for name, (seconds, rate) in NOISE_SECONDS.items():
        samples = np.random.default_rng(len(name)).uniform(-0.5, 0.5, int(seconds * rate)).astype(np.float32)
        sf.write(root / "_background_noise_" / name, samples, rate, subtype="FLOAT")
    return root


def test_noise_cuts_split_each_recording_by_position(tmp_path):
    cuts = noise_cuts(make_sc12_folder(tmp_path / "sc"))
    long = [f"_background_noise_/long.wav#{k}" for k in range(25)]
    three = [f"_background_noise_/three.wav#{k}" for k in range(3)]
    # The last tenth (at least one cut) is testing, the tenth before it validation; under 3 s: no cuts.
    assert cuts == {
        "train": long[:21] + three[:1],
        "validation": long[21:23] + three[1:2],
        "testing": long[23:] + three[2:],
    }
    assert noise_cuts(make_folder(tmp_path / "plain")) == {"train": [], "validation": [], "testing": []}


def test_sc12_maps_other_words_to_unknown_and_silence_clips_and_noise_cuts_to_silence(tmp_path, capsys):
    root = make_sc12_folder(tmp_path / "sc")
    silence, unknown = SC12_CLASSES.index(SILENCE), SC12_CLASSES.index(UNKNOWN)
    expected = {  # yes/no/bed/cat: speakers 0-1 train, 2 validation, 3 testing; _silence_ clips; noise cuts
        "train": ({0: 2, 1: 2, unknown: 4, silence: 2 + 22}, 22),
        "validation": ({0: 1, 1: 1, unknown: 2, silence: 1 + 3}, 3),
        "testing": ({0: 1, 1: 1, unknown: 2, silence: 1 + 3}, 3),
    }
    for split, (counts, n_cuts) in expected.items():
        dataset = SpeechCommands(root, "sc12", split)
        assert dataset.classes == SC12_CLASSES and Counter(dataset.labels) == counts, split
        assert sum("#" in p for p in dataset.paths) == n_cuts
        for path, label in zip(dataset.paths, dataset.labels, strict=True):
            folder = Path(path).parent.name
            want = {"yes": 0, "no": 1, "bed": unknown, "cat": unknown}.get(folder, silence)
            assert label == want, path
    test = SpeechCommands(root, "sc12", "testing")
    wave, label, path = test[test.paths.index(str(root / "_background_noise_/long.wav#24"))]
    recording, _ = sf.read(root / "_background_noise_/long.wav", dtype="float32")
    assert label == silence and wave.shape == (16000,)
    assert torch.equal(wave, torch.from_numpy(recording[24 * 16000 : 25 * 16000]))  # the recording's 25th second
    eight = SpeechCommands(root, "sc12", "testing", sample_rate=8000)
    wave, _, _ = eight[eight.paths.index(str(root / "_background_noise_/three.wav#2"))]
    assert wave.shape == (8000,) and wave.abs().max() > 0.1  # an 8 kHz recording's cut, resampled twice
    assert data.main(["info", "--root", str(root), "--subset", "sc12"]) == 0
    assert "_silence_=24 _unknown_=4" in capsys.readouterr().out


def test_sc12_on_an_sc10_only_folder_has_no_silence_or_unknown(tmp_path):
    root = make_folder(tmp_path / "sc", words=("yes", "no", "up"), per_word=4)  # its noise: 1.25 s, no cut
    for split in ("train", "validation", "testing"):
        twelve, ten = SpeechCommands(root, "sc12", split), SpeechCommands(root, "sc10", split)
        assert twelve.classes == SC12_CLASSES and twelve.paths == ten.paths and twelve.labels == ten.labels


def test_sc10_and_sc35_ignore_the_silence_folder_and_noise(tmp_path):
    root = make_sc12_folder(tmp_path / "sc")
    for split in ("train", "validation", "testing"):
        ten = SpeechCommands(root, "sc10", split)
        assert {Path(p).parent.name for p in ten.paths} == {"yes", "no"} and set(ten.labels) == {0, 1}
        many = SpeechCommands(root, "sc35", split)
        assert many.classes == ("bed", "cat", "no", "yes")
        assert {Path(p).parent.name for p in many.paths} == set(many.classes)
        assert Counter(many.labels) == dict.fromkeys(range(4), 2 if split == "train" else 1)


def test_corrupt_clips_are_reported_and_excluded(tmp_path, caplog):
    root = make_folder(tmp_path / "sc", per_word=4)
    (root / "yes" / "broken_nohash_0.wav").write_bytes(b"RIFF0000WAVEjunk")
    (root / "no" / "empty_nohash_0.wav").write_bytes(b"")
    with caplog.at_level(logging.WARNING):
        dataset = SpeechCommands(root, split="train")
    assert len(dataset) == 4
    assert sorted(Path(p).name for p, _ in dataset.bad_files) == ["broken_nohash_0.wav", "empty_nohash_0.wav"]
    assert all(reason.startswith("unreadable") for _, reason in dataset.bad_files)
    assert "2 unreadable clips left out" in caplog.text and "broken_nohash_0.wav" in caplog.text


def test_missing_or_wrong_root(tmp_path):
    with pytest.raises(FileNotFoundError, match=r"Speech Commands folder .*nowhere does not exist"):
        SpeechCommands(tmp_path / "nowhere")
    empty = tmp_path / "empty"
    empty.mkdir()
    with pytest.raises(ValueError, match=r"empty is not in the Speech Commands layout: no WAV or FLAC files"):
        SpeechCommands(empty)
    root = make_folder(tmp_path / "sc")
    (root / "testing_list.txt").unlink()
    with pytest.raises(ValueError, match=r"not in the Speech Commands layout: testing_list\.txt is missing"):
        SpeechCommands(root, split="train")
    with pytest.raises(ValueError, match="unknown split 'dev'"):
        SpeechCommands(root, split="dev")
    with pytest.raises(ValueError, match="unknown subset 'sc11'; choose 'sc10', 'sc12' or 'sc35'"):
        SpeechCommands(root, subset="sc11")


def test_index_cache_avoids_rescans_and_notices_changes(tmp_path, monkeypatch):
    root = make_folder(tmp_path / "sc", per_word=3)
    assert len(SpeechCommands(root, split="train")) == 2
    assert (root / clip_index.INDEX_FILE).exists()

    def no_reading(*args, **kwargs):
        raise AssertionError("the index should have come from the cache")

    monkeypatch.setattr(clip_index.sf, "info", no_reading)
    assert len(SpeechCommands(root, split="train")) == 2
    monkeypatch.undo()
    shutil.copy(root / "yes/spk00_nohash_0.wav", root / "yes/new_nohash_0.wav")
    assert len(SpeechCommands(root, split="train")) == 3


def test_datamodule_loaders_and_deterministic_augmentation(tiny_sc10):
    def first_batch(seed):
        module = SpeechCommandsDataModule(tiny_sc10, batch_size=4, augment=True, seed=seed)
        module.setup("fit")
        return next(iter(module.train_dataloader()))

    waves, labels, paths = first_batch(0)
    assert waves.shape == (4, 16000) and waves.dtype == torch.float32 and labels.shape == (4,)
    again, _, paths_again = first_batch(0)
    assert torch.equal(waves, again) and list(paths) == list(paths_again)
    plain = SpeechCommands(tiny_sc10, split="train")
    assert not torch.equal(waves[0], plain[plain.paths.index(paths[0])][0])  # augmented

    module = SpeechCommandsDataModule(tiny_sc10, batch_size=8, sample_rate=8000)
    assert module.classes == SC10_CLASSES
    val, test = next(iter(module.val_dataloader())), next(iter(module.test_dataloader()))
    assert val[0].shape == (8, 8000) and test[0].shape == (8, 8000)


def test_datamodule_with_workers_is_reproducible(tmp_path):
    root = make_folder(tmp_path / "sc", per_word=6)

    def batches():
        module = SpeechCommandsDataModule(root, batch_size=2, num_workers=2, augment=True, seed=3)
        return torch.cat([b[0] for b in module.train_dataloader()])

    assert torch.equal(batches(), batches())


def test_cli_info_and_help(tiny_sc10, capsys):
    assert data.main(["info", "--root", str(tiny_sc10)]) == 0
    out = capsys.readouterr().out
    assert "SYNTHETIC" in out
    assert "train" in out and "yes=3" in out and "testing" in out and "go=1" in out
    with pytest.raises(SystemExit) as exit_info:
        data.main(["--help"])
    assert exit_info.value.code == 0 and "download" in capsys.readouterr().out
    assert data.main(["info", "--root", str(tiny_sc10 / "missing")]) == 2
    assert "does not exist" in capsys.readouterr().err


def test_datamodule_passes_augment_options_and_names_an_unknown_one(tiny_sc10):
    module = SpeechCommandsDataModule(tiny_sc10, augment=True, speed=(0.9, 1.1), shift_ms=0)
    module.setup("fit")
    augment = module._dataset("train").augment
    assert augment.speed == (0.9, 1.1) and augment.max_shift == 0
    with pytest.raises(ValueError, match="unknown augmentation option.*spead"):
        SpeechCommandsDataModule(tiny_sc10, augment=True, spead=(0.9, 1.1))
