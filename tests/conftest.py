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


# ---- app fixtures -----------------------------------------------------------------------------------------


@pytest.fixture(scope="session")
def tiny_s4_export(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A tiny randomly initialised causal S4Classifier for SC10, exported with training.export (seed 0).

    Random weights: tests may check that an answer is one of the classes, never which one.
    """
    import torch

    from s4 import S4Classifier
    from training.data import SC10_CLASSES
    from training.export import FORMAT, export_model

    torch.manual_seed(0)
    kwargs = dict(n_classes=len(SC10_CLASSES), d_model=8, n_layers=2, d_state=8, pool=[4, 4], dropout=0.0)
    meta = {
        "format": FORMAT,
        "model": "s4",
        "model_kwargs": kwargs,
        "sample_rate": 16000,
        "clip_samples": 16000,
        "classes": list(SC10_CLASSES),
        "data": {"synthetic": True, "description": "untrained test model (random weights)"},
        "metrics": {"test_acc_16000": 0.1},
    }
    return export_model(S4Classifier(**kwargs).eval(), meta, tmp_path_factory.mktemp("tiny_model") / "tiny.safetensors")


@pytest.fixture(scope="session")
def tiny_sc12_bidirectional_export(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A tiny randomly initialised BIDIRECTIONAL S4Classifier with the 12 keyword-spotting classes (the ten
    words, `_silence_`, `_unknown_`), exported with training.export (seed 0). No recurrent step view.

    Random weights: tests may check which classes and names appear, never which one wins.
    """
    import torch

    from s4 import S4Classifier
    from training.export import FORMAT, export_model

    classes = ["yes", "no", "up", "down", "left", "right", "on", "off", "stop", "go", "_silence_", "_unknown_"]
    torch.manual_seed(0)
    kwargs = dict(
        n_classes=len(classes), d_model=8, n_layers=1, d_state=4, mode="diag", bidirectional=True, pool=[4],
        dropout=0.0,
    )  # fmt: skip
    meta = {
        "format": FORMAT,
        "model": "s4",
        "model_kwargs": kwargs,
        "sample_rate": 16000,
        "clip_samples": 16000,
        "classes": classes,
        "data": {"synthetic": True, "description": "untrained 12-class test model (random weights)"},
    }
    path = tmp_path_factory.mktemp("tiny_sc12") / "tiny_sc12.safetensors"
    return export_model(S4Classifier(**kwargs).eval(), meta, path)
