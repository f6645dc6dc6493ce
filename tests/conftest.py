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
    from training.data.synth import ENGINES, generate

    missing = [p for p in ("sox", *ENGINES) if shutil.which(p) is None]
    if missing:
        pytest.skip(f"text-to-speech programs not installed: {', '.join(missing)}")
    root = tmp_path_factory.mktemp("tiny_sc10")
    generate(root, clips_per_word=TINY_CLIPS_PER_WORD, seed=0, workers=2, progress=False, noise_seconds=3.0)
    return root


# ---- app fixtures -----------------------------------------------------------------------------------------


def _tiny_export(path: Path, classes: list[str], description: str, metrics: dict | None = None, **options) -> Path:
    """A tiny randomly initialised S4Classifier (seed 0, d_model 8, no dropout) exported with training.serving.export
    to `path`; `options` are its other constructor options."""
    import torch

    from s4 import S4Classifier
    from training.serving.export import FORMAT, export_model

    torch.manual_seed(0)
    kwargs = dict(n_classes=len(classes), d_model=8, dropout=0.0, **options)
    meta = {
        "format": FORMAT,
        "model": "s4",
        "model_kwargs": kwargs,
        "sample_rate": 16000,
        "clip_samples": 16000,
        "classes": list(classes),
        "data": {"synthetic": True, "description": description},
    }
    if metrics is not None:
        meta["metrics"] = metrics
    return export_model(S4Classifier(**kwargs).eval(), meta, path)


@pytest.fixture(scope="session")
def tiny_s4_export(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A tiny randomly initialised causal S4Classifier for SC10, exported with training.serving.export (seed 0).

    Random weights: tests may check that an answer is one of the classes, never which one.
    """
    from training.data.speech_commands import SC10_CLASSES

    return _tiny_export(
        tmp_path_factory.mktemp("tiny_model") / "tiny.safetensors", list(SC10_CLASSES),
        "untrained test model (random weights)", {"test_acc_16000": 0.1}, n_layers=2, d_state=8, pool=[4, 4],
    )  # fmt: skip


@pytest.fixture(scope="session")
def tiny_sc12_bidirectional_export(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A tiny randomly initialised BIDIRECTIONAL S4Classifier with the 12 keyword-spotting classes (the ten
    words, `_silence_`, `_unknown_`), exported with training.serving.export (seed 0). No recurrent step view.

    Random weights: tests may check which classes and names appear, never which one wins.
    """
    from training.data.speech_commands import SC12_CLASSES

    return _tiny_export(
        tmp_path_factory.mktemp("tiny_sc12") / "tiny_sc12.safetensors", list(SC12_CLASSES),
        "untrained 12-class test model (random weights)",
        n_layers=1, d_state=4, mode="diag", bidirectional=True, pool=[4],
    )  # fmt: skip
