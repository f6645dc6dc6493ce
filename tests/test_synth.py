"""training.synth: layout, voice-disjoint splits, determinism, clear errors."""

from __future__ import annotations

import hashlib
import json
import shutil
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf

import training.data.effects as effects
import training.data.synth as synth
import training.data.tts as tts
from training.data.speech_commands import SC10_CLASSES

needs_tts = pytest.mark.skipif(
    any(shutil.which(p) is None for p in ("sox", *tts.ENGINES)),
    reason="flite/festival/espeak-ng/sox missing",
)


def voice_of(relative: str) -> str:
    return Path(relative).name.split("_nohash_")[0]


def digest(root: Path) -> dict[str, str]:
    return {
        str(p.relative_to(root)): hashlib.sha256(p.read_bytes()).hexdigest()
        for p in sorted(root.rglob("*"))
        if p.is_file()
    }


def test_layout_and_format(tiny_sc10):
    for name in ("README", "manifest.json", "validation_list.txt", "testing_list.txt"):
        assert (tiny_sc10 / name).is_file()
    assert "SYNTHETIC" in (tiny_sc10 / "README").read_text()
    manifest = json.loads((tiny_sc10 / "manifest.json").read_text())
    assert manifest["synthetic"] is True and manifest["seed"] == 0 and manifest["words"] == list(SC10_CLASSES)
    assert {v["engine"] for v in manifest["voices"]} == set(tts.ENGINES)  # every engine is used
    clips = sorted(tiny_sc10.glob("*/*_nohash_*.wav"))
    assert len(clips) == 50
    for clip in clips[:10]:
        info = sf.info(clip)
        assert (info.samplerate, info.channels, info.frames, info.subtype) == (16000, 1, 16000, "PCM_16")
    noises = sorted((tiny_sc10 / "_background_noise_").glob("*.wav"))
    assert [p.stem for p in noises] == sorted(f"{k}_noise" for k in effects.NOISE_KINDS)
    assert sf.info(noises[0]).duration == pytest.approx(3.0)


def test_splits_share_no_voice(tiny_sc10):
    lists = {s: (tiny_sc10 / f"{s}_list.txt").read_text().split() for s in ("validation", "testing")}
    every = {str(p.relative_to(tiny_sc10)) for p in tiny_sc10.glob("*/*_nohash_*.wav")}
    lists["train"] = sorted(every - set(lists["validation"]) - set(lists["testing"]))
    voices = {split: {voice_of(p) for p in paths} for split, paths in lists.items()}
    assert all(voices.values())
    assert not (voices["train"] & voices["validation"] or voices["train"] & voices["testing"])
    assert not voices["validation"] & voices["testing"]
    assert all(p in every for p in lists["validation"] + lists["testing"])
    manifest = json.loads((tiny_sc10 / "manifest.json").read_text())
    assert {v["hash"]: v["split"] for v in manifest["voices"]} == {v: s for s, vs in voices.items() for v in vs}


def test_words_are_audible_and_placed_inside_the_clip(tiny_sc10):
    for clip in sorted(tiny_sc10.glob("yes/*.wav")):
        x, _ = sf.read(clip)
        level = 20 * np.log10(np.sqrt(np.mean(x**2)))
        assert -45 < level < -8, clip
        assert np.abs(x).max() < 1.0


@needs_tts
def test_same_seed_gives_identical_files(tmp_path):
    kwargs = {"words": ("yes", "no"), "clips_per_word": 3, "seed": 7, "progress": False, "noise_seconds": 1.5}
    first = synth.generate(tmp_path / "a", workers=1, **kwargs)
    second = synth.generate(tmp_path / "b", workers=2, **kwargs)
    assert first == second
    assert digest(tmp_path / "a") == digest(tmp_path / "b")
    other = synth.generate(tmp_path / "c", workers=1, **{**kwargs, "seed": 8})
    assert digest(tmp_path / "c") != digest(tmp_path / "a") and other["voices"] != first["voices"]


def test_missing_engine_names_the_package(monkeypatch, capsys):
    monkeypatch.setattr(tts.shutil, "which", lambda name: None if name == "flite" else f"/usr/bin/{name}")
    with pytest.raises(tts.SynthError, match=r"flite not found: apt-get install flite"):
        tts.check_engines(["flite"])
    with pytest.raises(tts.SynthError, match="unknown engine 'mbrola'"):
        tts.check_engines(["mbrola"])
    assert synth.main(["--out", "/nonexistent/never", "--engines", "flite", "--clips-per-word", "1"]) == 2
    assert capsys.readouterr().err == "error: flite not found: apt-get install flite\n"


def test_refuses_a_non_empty_output_folder(tmp_path):
    (tmp_path / "old.txt").write_text("left over")
    with pytest.raises(tts.SynthError, match=r"exists and is not empty: delete it or choose another --out"):
        synth.generate(tmp_path, clips_per_word=1, progress=False)


def test_split_assignment_is_about_80_10_10_and_spread_over_engines():
    rng = np.random.default_rng(0)
    voices = synth._sample_voices(150, tts.ENGINES, rng)
    splits = synth.assign_splits(voices)
    counts = {s: list(splits.values()).count(s) for s in ("train", "validation", "testing")}
    assert counts == {"train": 120, "validation": 15, "testing": 15}
    for split in ("validation", "testing"):
        assert {v.engine for v in voices if splits[v.hash] == split} == set(tts.ENGINES)
    assert len({v.hash for v in voices}) == 150


def test_plan_and_words():
    assert synth._plan(300, 2) == [2] * 150
    assert synth._plan(5, 2) == [1] * 5
    assert synth._plan(41, 2) == [2] * 20 + [1]
    assert synth.resolve_words("sc10") == SC10_CLASSES
    assert len(synth.resolve_words("sc35")) == 35
    assert synth.resolve_words("yes, no") == ("yes", "no")


@pytest.mark.parametrize("kind", effects.NOISE_KINDS)
def test_noise_kinds(kind):
    noise = effects.make_noise(kind, 0.5, np.random.default_rng(0))
    assert noise.shape == (8000,) and noise.dtype == np.float32
    assert np.abs(noise).max() == pytest.approx(0.5) and noise.std() > 0.01
