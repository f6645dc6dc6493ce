"""training.join: exported runs of one recipe → one ensemble export (the mean of the members' logits with their
rejection offsets undone, the union of the heard speakers), and the runs it refuses to join."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch
from test_evaluate import make_real_folder

from s4 import S4Classifier
from training.data.speech_commands import SC12_CLASSES, SpeechCommands
from training.evaluation.evaluate import evaluate_model
from training.fitting import join
from training.fitting.calibrate import set_offset
from training.serving import export
from training.serving.ensemble import Ensemble
from training.serving.export import FORMAT, export_model, load_model

KWARGS = {
    "n_classes": 12, "d_model": 8, "n_layers": 1, "d_state": 4, "mode": "diag", "bidirectional": True,
    "dropout": 0.0, "frontend": {"channels": 4, "modes": 2, "hop_ms": 10, "keep_band": True},
}  # fmt: skip


def _run(path: Path, seed: int, offset: float, heard: list[str], **changes) -> Path:
    """A tiny random 12-class model exported as a validated run would be: seed, offset and heard speakers."""
    torch.manual_seed(seed)
    model = S4Classifier(**KWARGS).eval()
    set_offset(model, list(SC12_CLASSES), offset)
    meta = {
        "format": FORMAT,
        "model": "s4",
        "model_kwargs": KWARGS,
        "ensemble": 1,
        "sample_rate": 16000,
        "clip_samples": 16000,
        "classes": list(SC12_CLASSES),
        "data": {"synthetic": False, "description": "untrained test run", "heard_speakers": heard},
        "metrics": {"test_acc_16000": 0.5, "n_parameters": 1},
        "config": {"seed": seed, "ensemble": 1},
        "calibration": {"offset": offset, "split": "validation"},
        **changes,
    }
    return export_model(model, meta, path)


def test_joined_export_is_the_mean_of_the_uncalibrated_members(tmp_path: Path) -> None:
    a = _run(tmp_path / "a.safetensors", seed=0, offset=-0.85, heard=["s1", "s2"])
    b = _run(tmp_path / "b.safetensors", seed=1, offset=0.35, heard=["s2", "s3"])
    assert join.main([str(a), str(b), "--out", str(tmp_path / "ab.safetensors")]) == 0
    model, meta = load_model(tmp_path / "ab.safetensors")
    assert isinstance(model, Ensemble) and meta["ensemble"] == 2 and meta["config"]["ensemble"] == 2
    members = []
    for path in (a, b):
        member, member_meta = load_model(path)
        set_offset(member, member_meta["classes"], 0.0, member_meta["calibration"]["offset"])
        members.append(member)
    x = torch.randn(3, 8000)
    for dt_scale in (1.0, 2.0):
        expected = (members[0](x, dt_scale) + members[1](x, dt_scale)) / 2
        torch.testing.assert_close(model(x, dt_scale), expected)
    assert "calibration" not in meta
    assert meta["data"]["heard_speakers"] == ["s1", "s2", "s3"]
    assert meta["metrics"] == {"n_parameters": sum(p.numel() for p in model.parameters())}
    assert [(entry["seed"], entry["offset"]) for entry in meta["joined_from"]] == [(0, -0.85), (1, 0.35)]


def test_a_final_fits_members_join_with_the_recipes_fixed_offset(tmp_path: Path, capsys) -> None:
    a = _run(tmp_path / "a.safetensors", seed=0, offset=-0.45, heard=["s1"])
    b = _run(tmp_path / "b.safetensors", seed=1, offset=-0.45, heard=["s2"])
    plain, fixed = tmp_path / "ab.safetensors", tmp_path / "ab-fixed.safetensors"
    assert join.main([str(a), str(b), "--out", str(plain)]) == 0
    assert join.main([str(a), str(b), "--out", str(fixed), "--offset", "-0.6"]) == 0
    assert "rejection offset -0.6" in capsys.readouterr().out
    (without, _), (model, meta) = load_model(plain), load_model(fixed)
    assert meta["calibration"] == {"offset": -0.6, "split": None}
    x = torch.randn(2, 8000)
    reject = [SC12_CLASSES.index(name) for name in ("_silence_", "_unknown_")]
    shift = torch.zeros(12)
    shift[reject] = -0.6
    torch.testing.assert_close(model(x, 2.0), without(x, 2.0) + shift)


def test_data_measures_the_ensembles_own_test_metrics(tmp_path: Path) -> None:
    root = make_real_folder(tmp_path / "real", words=("yes", "no", "bed"), silence=True)
    a = _run(tmp_path / "a.safetensors", seed=0, offset=-0.45, heard=[])
    b = _run(tmp_path / "b.safetensors", seed=1, offset=-0.45, heard=[])
    out = tmp_path / "ab.safetensors"
    assert join.main([str(a), str(b), "--out", str(out), "--offset", "-0.45", "--data", str(root)]) == 0
    model, meta = load_model(out)
    test = SpeechCommands(root, "sc12", "test")
    with torch.no_grad():
        expected = export.test_metrics(evaluate_model(model, meta, test, [16000, 8000]))
    assert meta["metrics"] == {**expected, "n_parameters": sum(p.numel() for p in model.parameters())}
    assert "test_commands_acc_8000" in meta["metrics"]


def test_runs_that_cannot_form_one_ensemble_are_refused(tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    a = _run(tmp_path / "a.safetensors", seed=0, offset=0.0, heard=[])
    other_rate = _run(tmp_path / "rate.safetensors", seed=1, offset=0.0, heard=[], sample_rate=8000)
    with pytest.raises(ValueError, match="at least 2"):
        join.join([a])
    with pytest.raises(ValueError, match="named twice"):
        join.join([a, tmp_path / "." / "a.safetensors"])
    with pytest.raises(ValueError, match="differ in sample_rate"):
        join.join([a, other_rate])
    ensemble, meta = join.join([a, _run(tmp_path / "b.safetensors", seed=1, offset=0.0, heard=[])])
    export_model(ensemble, meta, tmp_path / "ab.safetensors")
    with pytest.raises(ValueError, match="already an ensemble of 2"):
        join.join([a, tmp_path / "ab.safetensors"])
    assert join.main([str(a), str(other_rate), "--out", str(tmp_path / "bad.safetensors")]) == 2
    error = capsys.readouterr().err
    assert error.startswith("error: ") and error.count("\n") == 1 and "sample_rate" in error
    assert not (tmp_path / "bad.safetensors").exists()
