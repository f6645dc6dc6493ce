"""The reader on the real recordings beside this checkout (../shared/data/speech_commands_real): skipped where
that folder is absent (a user's machine)."""

from collections import Counter
from pathlib import Path

import pytest
import torch

from training.data.speech_commands import SC10_CLASSES, SC12_CLASSES, SpeechCommands

REAL = Path(__file__).resolve().parents[1].parent / "shared" / "data" / "speech_commands_real"
pytestmark = pytest.mark.skipif(not REAL.is_dir(), reason="real recordings not present on this machine")


def test_real_sc10_test_split_at_both_rates():
    full = SpeechCommands(REAL, subset="sc10", split="test", sample_rate=16000)
    assert len(full) == 321  # the folder's README: 321 SC10 test clips of 21 speakers
    counts = Counter(full.labels)
    assert set(counts) == set(range(len(SC10_CLASSES)))
    waveform, label, path = full[0]
    assert waveform.shape == (16000,) and waveform.dtype == torch.float32
    assert Path(path).parent.name == SC10_CLASSES[label]
    half = SpeechCommands(REAL, subset="sc10", split="test", sample_rate=8000, downsample="decimate")
    assert half[0][0].shape == (8000,)
    assert torch.equal(half[0][0], waveform[::2])


def test_real_sc12_splits_hold_commands_silence_and_other_words():
    sizes = {"train": (1662, 2474), "validation": (437, 610), "test": (321, 440)}
    for split, (commands, total) in sizes.items():
        dataset = SpeechCommands(REAL, subset="sc12", split=split)
        counts = Counter(SC12_CLASSES[label] for label in dataset.labels)
        assert len(dataset) == total and sum(counts[w] for w in SC10_CLASSES) == commands, split
        assert counts["_silence_"] > 0 and counts["_unknown_"] > 0, split
