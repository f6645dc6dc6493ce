"""The reader on real recordings (../shared/data/speech_commands_real_dev): skipped where that folder is absent."""

from collections import Counter
from pathlib import Path

import pytest
import torch

from training.data import SC10_CLASSES, SpeechCommands

REAL_DEV = Path(__file__).resolve().parents[1].parent / "shared" / "data" / "speech_commands_real_dev"
pytestmark = pytest.mark.skipif(not REAL_DEV.is_dir(), reason="real dev recordings not present on this machine")


def test_real_dev_sc10_test_split_at_both_rates():
    full = SpeechCommands(REAL_DEV, subset="sc10", split="test", sample_rate=16000)
    assert len(full) == 1332
    counts = Counter(full.labels)
    assert set(counts) == set(range(len(SC10_CLASSES)))
    assert all(124 <= n <= 153 for n in counts.values())
    waveform, label, path = full[0]
    assert waveform.shape == (16000,) and waveform.dtype == torch.float32
    assert Path(path).parent.name == SC10_CLASSES[label]
    half = SpeechCommands(REAL_DEV, subset="sc10", split="test", sample_rate=8000, downsample="decimate")
    assert half[0][0].shape == (8000,)
    assert torch.equal(half[0][0], waveform[::2])
