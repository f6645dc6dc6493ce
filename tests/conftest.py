"""Shared test fixtures."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

# ---- data fixtures ----------------------------------------------------------------------------------------

TINY_CLIPS_PER_WORD = 5  # five voices, one clip of each word each: 3 train / 1 validation / 1 testing voices


@pytest.fixture(scope="session")
def tiny_sc10(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A tiny SYNTHETIC SC10 dataset in the Speech Commands layout (seed 0, 5 clips per word: 30/10/10).

    Generated once per test session with training.synth (needs flite, festival, espeak-ng and sox).
    """
    from training.synth import ENGINES, generate

    missing = [p for p in ("sox", *ENGINES) if shutil.which(p) is None]
    if missing:
        pytest.skip(f"text-to-speech programs not installed: {', '.join(missing)}")
    root = tmp_path_factory.mktemp("tiny_sc10")
    generate(root, clips_per_word=TINY_CLIPS_PER_WORD, seed=0, workers=2, progress=False, noise_seconds=3.0)
    return root
