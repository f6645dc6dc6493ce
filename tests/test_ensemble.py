"""training.serving.ensemble: the mean of the members' logits in every view, the export round trip, the rejection
offset, the config key, a two-member training run with resume, and the app on an ensemble."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import soundfile as sf
import torch
import yaml

from app import handlers, streaming
from app.bundle import load_bundle
from s4 import S4Classifier
from training.data.speech_commands import SC12_CLASSES
from training.fitting import train
from training.fitting.calibrate import set_offset
from training.fitting.config import ConfigError, validate
from training.serving.ensemble import Ensemble
from training.serving.export import FORMAT, ModelFileError, export_model, load_model
from training.serving.models import build_model

CAUSAL = {"n_classes": 12, "d_model": 8, "n_layers": 2, "d_state": 8, "pool": [4, 4], "dropout": 0.0}
FILTERBANK = {
    "n_classes": 12, "d_model": 8, "n_layers": 1, "d_state": 4, "mode": "diag", "bidirectional": True,
    "dropout": 0.0, "frontend": {"channels": 4, "modes": 2, "hop_ms": 10, "keep_band": True},
}  # fmt: skip


def _members(kwargs: dict, n: int = 2, dtype: torch.dtype = torch.float32) -> list[S4Classifier]:
    torch.manual_seed(0)
    return [S4Classifier(**kwargs).to(dtype).eval() for _ in range(n)]


def _meta(kwargs: dict, members: int) -> dict:
    return {
        "format": FORMAT,
        "model": "s4",
        "model_kwargs": kwargs,
        "ensemble": members,
        "sample_rate": 16000,
        "clip_samples": 16000,
        "classes": list(SC12_CLASSES),
        "data": {"synthetic": True, "description": "untrained test ensemble (random weights)"},
    }


@pytest.mark.parametrize("kwargs", [CAUSAL, FILTERBANK])
@pytest.mark.parametrize("dt_scale", [1.0, 2.0])
def test_forward_is_the_mean_of_the_members_logits(kwargs: dict, dt_scale: float) -> None:
    members = _members(kwargs, 3, torch.float64)
    x = torch.randn(2, 4000 if dt_scale == 1.0 else 2000, dtype=torch.float64)
    expected = sum(member(x, dt_scale) for member in members) / 3
    logits = Ensemble(members)(x, dt_scale)
    assert logits.shape == (2, 12) and logits.dtype == torch.float64
    torch.testing.assert_close(logits, expected, rtol=1e-12, atol=1e-12)
    assert not torch.allclose(members[0](x, dt_scale), members[1](x, dt_scale))  # the members differ


def test_recurrent_view_of_causal_members_equals_forward() -> None:
    model = Ensemble(_members(CAUSAL, dtype=torch.float64))
    assert model.causal and model.pooling == 16
    x = torch.randn(1, 800, dtype=torch.float64)
    state, features = model.initial_state(1), []
    for chunk in x.split(100, dim=1):  # chunks of any size: 100 is not a multiple of the pooling
        out, state = model.step_chunk(chunk, state)
        features.append(out)
    pooled = torch.cat(features, dim=1)
    assert pooled.shape == (1, 800 // 16, 2 * 8)  # the members' features side by side
    torch.testing.assert_close(model.head(pooled.mean(1)), model(x), rtol=1e-6, atol=1e-7)


def test_members_step_sizes_and_frontend_are_gathered() -> None:
    members = _members(FILTERBANK)
    model = Ensemble(members)
    assert not model.causal and model.frontend is members[0].frontend
    assert model.rescaled_ssms() == [members[0].frontend.ssm, members[1].frontend.ssm]
    torch.testing.assert_close(model.step_sizes(), torch.cat([m.step_sizes() for m in members]))


def test_bad_member_lists_are_refused() -> None:
    with pytest.raises(ValueError, match="at least 2 members"):
        Ensemble(_members(CAUSAL, 1))
    with pytest.raises(ValueError, match="same kind"):
        Ensemble([_members(CAUSAL, 1)[0], build_model("cnn", n_classes=12, n_channels=4)])


def test_rejection_offset_moves_the_mean_of_the_rejection_logits() -> None:
    model = Ensemble(_members(CAUSAL))
    x = torch.randn(2, 1600)
    before = model(x)
    set_offset(model, SC12_CLASSES, -0.7)
    shift = model(x) - before
    torch.testing.assert_close(shift[:, 10:], torch.full((2, 2), -0.7), rtol=0, atol=1e-5)
    torch.testing.assert_close(shift[:, :10], torch.zeros(2, 10), rtol=0, atol=1e-6)


def test_export_round_trip_and_mismatched_files(tmp_path: Path) -> None:
    model = Ensemble(_members(FILTERBANK))
    path = export_model(model, _meta(FILTERBANK, 2), tmp_path / "ensemble.safetensors")
    loaded, meta = load_model(path)
    assert isinstance(loaded, Ensemble) and len(loaded.members) == 2 and meta["ensemble"] == 2
    x = torch.randn(2, 4000)
    for dt_scale in (1.0, 2.0):
        torch.testing.assert_close(loaded(x, dt_scale), model(x, dt_scale))
    single = tmp_path / "single.safetensors"
    export_model(_members(FILTERBANK, 1)[0], _meta(FILTERBANK, 2), single)  # one model's weights, "ensemble": 2
    with pytest.raises(ModelFileError, match="another model"):
        load_model(single)
    for bad in (0, "two", True):
        path.with_suffix(".json").write_text(json.dumps(_meta(FILTERBANK, bad)))
        with pytest.raises(ModelFileError, match="number of members"):
            load_model(path)


@pytest.mark.parametrize("bad", [0, -1, 1.5, "two", True])
def test_config_ensemble_must_be_a_member_count(bad) -> None:
    with pytest.raises(ConfigError, match="ensemble"):
        validate({"ensemble": bad})
    assert validate({})["ensemble"] == 1 and validate({"ensemble": 3})["ensemble"] == 3


def test_cli_trains_each_member_with_its_seed_then_exports_the_ensemble(tiny_sc10: Path, tmp_path: Path) -> None:
    config = tmp_path / "tiny.yaml"
    config.write_text(
        yaml.safe_dump(
            {
                "seed": 5,
                "ensemble": 2,
                "model": {"kind": "s4", "d_model": 8, "n_layers": 1, "d_state": 8, "pool": [16], "dropout": 0.0},
                "data": {"batch_size": 10},
                "trainer": {"max_epochs": 1, "log_every_n_steps": 1, "checkpoint_every_n_steps": 2},
                "test_rates": [16000],
            }
        )
    )
    out = tmp_path / "run"
    args = ["--config", str(config), "--data", str(tiny_sc10), "--out", str(out)]  # one epoch: 3 steps
    assert train.main(args) == 0
    for member in ("member-0", "member-1"):
        assert {"checkpoints", "learning_curves.png"} <= {p.name for p in (out / member).iterdir()}
        assert (out / member / "checkpoints" / "last.ckpt").is_file()
    model, meta = load_model(out / "model.json")
    assert isinstance(model, Ensemble) and meta["ensemble"] == 2 and meta["config"]["seed"] == 5
    assert set(meta["metrics"]) >= {"test_acc_16000", "n_parameters"}
    first, second = (dict(member.named_parameters())["decoder.weight"] for member in model.members)
    assert not torch.allclose(first, second)  # seeds 5 and 6: two different runs
    for member in ("member-0", "member-1"):  # saved where training ended, not at the last periodic save
        assert torch.load(out / member / "checkpoints" / "last.ckpt", weights_only=False)["global_step"] == 3
    weights = (out / "model.safetensors").read_bytes()
    assert train.main(args) == 2  # a second run into the same folder must not clobber it
    assert train.main([*args, "--resume"]) == 0  # both members finished: only the export is done again
    again, _ = load_model(out / "model.json")
    torch.testing.assert_close(again.state_dict(), model.state_dict())
    assert (out / "model.safetensors").read_bytes() == weights


def test_app_classifies_and_streams_with_an_ensemble(tmp_path: Path) -> None:
    path = export_model(Ensemble(_members(CAUSAL)), _meta(CAUSAL, 2), tmp_path / "ensemble.safetensors")
    bundle = load_bundle(path)
    assert "ensemble of 2" in bundle.describe() and bundle.causal
    torch.manual_seed(1)
    wave = torch.randn(16000) * 0.1
    sf.write(tmp_path / "noise.wav", wave.numpy(), 16000)
    result = handlers.classify(bundle, str(tmp_path / "noise.wav"), "8000", compare=True)
    assert result.dt_scale == 2.0 and set(result.label) == set(bundle.labels) and result.kernels is not None
    session = streaming.LiveSession(bundle, rate=16000, mic_rate=16000, engine="step")
    assert session.using == "step"
    session._step(wave[:4000])  # the recurrent view through both members, then their mean logits
    torch.testing.assert_close(session._step_logits(), bundle.model(wave[None, :4000])[0], rtol=1e-4, atol=1e-4)
