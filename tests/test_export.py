"""Exported models: safetensors + JSON round trip, atomic writes, one clear error per broken file; inference."""

from __future__ import annotations

import json
import struct
from pathlib import Path

import pytest
import torch

from training.common.atomic import atomic_write
from training.serving.export import FORMAT, REQUIRED, ModelFileError, export_model, load_model
from training.serving.inference import dt_scale_for, predict_logits, prepare
from training.serving.models import build_model

TINY_S4 = {"n_classes": 3, "d_model": 4, "n_layers": 2, "d_state": 4, "pool": [8, 1], "l_max": 1600}
TINY_CNN = {"n_classes": 3, "n_channels": 4}
TWO_BANDS = {"channels": 4, "modes": 2, "f_max": 3800.0, "keep_band": True, "high_channels": 2, "high_f_max": 7600.0}
TINY_S4_FILTERBANK = {"n_classes": 3, "d_model": 4, "n_layers": 1, "d_state": 4, "mode": "diag",
                      "bidirectional": True, "l_max": 1600, "frontend": {**TWO_BANDS, "high_drop": 0.5}}  # fmt: skip


def _meta(kind: str, kwargs: dict) -> dict:
    return {
        "format": FORMAT,
        "model": kind,
        "model_kwargs": kwargs,
        "sample_rate": 16000,
        "clip_samples": 1600,
        "classes": ["a", "b", "c"],
        "data": {"root": "nowhere", "synthetic": True, "subset": "sc10", "protocol": "official", "description": "x"},
        "metrics": {},
        "created": "2026-01-01T00:00:00+00:00",
        "config": {},
    }


@pytest.fixture()
def exported(tmp_path: Path) -> tuple[torch.nn.Module, Path]:
    torch.manual_seed(0)
    model = build_model("s4", **TINY_S4).eval()
    return model, export_model(model, _meta("s4", TINY_S4), tmp_path / "tiny.safetensors")


@pytest.mark.parametrize(
    ("kind", "kwargs", "length"),
    [("s4", TINY_S4, 1600), ("s4", TINY_S4_FILTERBANK, 1600), ("cnn", TINY_CNN, 16000)],
)
def test_round_trip_gives_the_same_logits(tmp_path: Path, kind: str, kwargs: dict, length: int) -> None:
    torch.manual_seed(0)
    model = build_model(kind, **kwargs).eval()
    path = export_model(model, _meta(kind, kwargs), tmp_path / "m.safetensors")
    assert path.suffix == ".safetensors" and path.with_suffix(".json").is_file()
    x = torch.randn(2, length)
    for which in (path, path.with_suffix(".json")):
        loaded, meta = load_model(which)
        assert not loaded.training and meta == _meta(kind, kwargs)
        for dt_scale in (1.0, 2.0):
            torch.testing.assert_close(loaded(x, dt_scale=dt_scale), model(x, dt_scale=dt_scale))


def test_export_replaces_atomically_and_leaves_no_temp_files(exported, tmp_path: Path) -> None:
    model, path = exported
    export_model(model, _meta("s4", TINY_S4), path)  # over the existing pair
    assert sorted(p.name for p in tmp_path.iterdir()) == ["tiny.json", "tiny.safetensors"]


def test_a_failed_atomic_write_keeps_the_old_file_and_leaves_no_temp_file(tmp_path: Path) -> None:
    target = tmp_path / "last.ckpt"
    target.write_bytes(b"old")

    def interrupted(handle) -> None:
        handle.write(b"half of the new")
        raise OSError("disk full")

    with pytest.raises(OSError, match="disk full"):
        atomic_write(target, interrupted)
    assert target.read_bytes() == b"old" and list(tmp_path.iterdir()) == [target]
    atomic_write(target, lambda handle: handle.write(b"new"))
    assert target.read_bytes() == b"new" and list(tmp_path.iterdir()) == [target]


def _expect(path: Path, *fragments: str) -> None:
    with pytest.raises(ModelFileError) as caught:
        load_model(path)
    message = str(caught.value)
    assert "\n" not in message
    for fragment in fragments:
        assert fragment in message


def test_missing_files(exported, tmp_path: Path) -> None:
    _expect(tmp_path / "absent.safetensors", "absent.safetensors", "not found")
    _, path = exported
    path.with_suffix(".json").unlink()
    _expect(path, "tiny.json", "not found")


def test_not_a_safetensors_file(exported) -> None:
    _, path = exported
    path.write_bytes(b"this is not a model")
    _expect(path, "tiny.safetensors", "not a safetensors file")


def test_invalid_json_and_unknown_kind(exported) -> None:
    _, path = exported
    description = path.with_suffix(".json")
    description.write_text("{not json")
    _expect(path, "tiny.json", "not valid JSON")
    description.write_text(json.dumps({**_meta("s4", TINY_S4), "model": "transformer"}))
    _expect(path, "unknown model kind 'transformer'")
    description.write_text(json.dumps({"hello": 1}))
    _expect(path, "not an s4-speech model description")


@pytest.mark.parametrize("key", REQUIRED)
def test_a_description_missing_a_key_names_it(exported, key: str) -> None:
    _, path = exported
    path.with_suffix(".json").write_text(json.dumps({k: v for k, v in _meta("s4", TINY_S4).items() if k != key}))
    if key == "format":  # without it the JSON is not recognisable as a model description at all
        _expect(path, "tiny.json", "not an s4-speech model description")
    else:
        _expect(path, "tiny.json", "lacks", key)


@pytest.mark.parametrize("missing", ["all the tensors", "half the tensors", "the last byte"])
def test_a_truncated_weights_file_with_a_valid_header_is_named(exported, missing: str) -> None:
    """A download or copy cut short: the header (8-byte length, then JSON naming every tensor's byte range) is
    whole and reads, the tensors it announces are not all there."""
    _, path = exported
    data = path.read_bytes()
    end = 8 + struct.unpack("<Q", data[:8])[0]
    header = json.loads(data[8:end])
    assert header["__metadata__"] == {"format": FORMAT} and len(header) > 1  # a valid header, naming tensors
    path.write_bytes(data[: {"all the tensors": end, "half the tensors": (end + len(data)) // 2}.get(missing, -1)])
    _expect(path, "tiny.safetensors", "not a safetensors file", "not fully covered")  # safetensors' words for it


def test_weights_not_matching_the_config(exported) -> None:
    _, path = exported
    path.with_suffix(".json").write_text(json.dumps(_meta("s4", {**TINY_S4, "d_model": 8})))
    _expect(path, "weights do not match the config")


def test_checkpoint_from_another_model(exported) -> None:
    _, path = exported
    path.with_suffix(".json").write_text(json.dumps(_meta("cnn", TINY_CNN)))
    _expect(path, "checkpoint from another model")


def test_a_training_checkpoint_is_refused_with_a_hint(tmp_path: Path) -> None:
    ckpt = tmp_path / "last.ckpt"
    ckpt.write_bytes(b"x")
    _expect(ckpt, "last.ckpt", "training checkpoint")


def test_dt_scale_and_prepare() -> None:
    meta = _meta("s4", TINY_S4)
    assert dt_scale_for(meta, 8000) == 2.0 and dt_scale_for(meta, 16000) == 1.0
    wave = torch.randn(2, 16000)
    assert prepare(wave, 16000, 8000).shape == (2, 8000)
    torch.testing.assert_close(prepare(wave, 16000, 8000, "decimate"), wave[:, ::2])
    assert prepare(wave, 16000, 16000) is wave
    with pytest.raises(ValueError, match="decimate"):
        prepare(wave, 16000, 6000, "decimate")


@pytest.mark.parametrize(("kind", "rescale", "expected"), [("s4", True, 2.0), ("s4", False, 1.0), ("cnn", True, 1.0)])
def test_predict_logits_picks_dt_scale(kind: str, rescale: bool, expected: float) -> None:
    seen = []

    class Spy(torch.nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.weight = torch.nn.Parameter(torch.zeros(1))

        def forward(self, waveform: torch.Tensor, dt_scale: float = 1.0) -> torch.Tensor:
            seen.append((dt_scale, torch.is_grad_enabled()))
            return waveform[:, :3] * self.weight

    logits = predict_logits(Spy(), _meta(kind, {}), torch.randn(2, 800), 8000, rescale=rescale)
    assert logits.shape == (2, 3) and seen == [(expected, False)]
