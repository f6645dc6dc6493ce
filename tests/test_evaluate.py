"""training.evaluate: JSON layout, accuracy against a direct computation, dt_scale per rate, comparisons, errors."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file

from s4 import S4Classifier
from training import evaluate
from training.data import SC10_CLASSES, SpeechCommands
from training.export import FORMAT, export_model
from training.models import build_model

KWARGS = {
    "s4": {"n_classes": 10, "d_model": 4, "n_layers": 2, "d_state": 4, "pool": [16, 4]},
    "cnn": {"n_classes": 10, "n_channels": 4},
}


def export_tiny(folder: Path, kind: str, data_root: Path) -> Path:
    torch.manual_seed(1)
    model = build_model(kind, **KWARGS[kind]).eval()
    meta = {
        "format": FORMAT,
        "model": kind,
        "model_kwargs": KWARGS[kind],
        "sample_rate": 16000,
        "clip_samples": 16000,
        "classes": list(SC10_CLASSES),
        "data": {
            "root": str(data_root),
            "synthetic": True,
            "subset": "sc10",
            "protocol": "official",
            "description": "t",
        },
        "metrics": {},
        "created": "2026-01-01T00:00:00+00:00",
        "config": {},
    }
    return export_model(model, meta, folder / kind / "model.safetensors")


@pytest.fixture()
def s4_model(tiny_sc10: Path, tmp_path: Path) -> Path:
    return export_tiny(tmp_path, "s4", tiny_sc10)


def run(capsys, *args: str) -> tuple[int, str, str]:
    code = evaluate.main([str(a) for a in args])
    captured = capsys.readouterr()
    return code, captured.out, captured.err


def test_json_layout_and_accuracy_equal_a_direct_computation(s4_model: Path, tiny_sc10: Path, tmp_path: Path, capsys):
    out = tmp_path / "report.json"
    code, printed, _ = run(capsys, "--model", s4_model, "--data", tiny_sc10, "--rates", 16000, 8000, "--json", out)
    assert code == 0 and "accuracy" in printed
    document = json.loads(out.read_text())
    assert set(document) == {"model", "data", "rates"} and list(document["rates"]) == ["16000", "8000"]
    assert document["data"]["synthetic"] is True and document["data"]["split"] == "test"
    for key, dt_scale in (("16000", 1.0), ("8000", 2.0)):
        entry = document["rates"][key]
        assert set(entry) >= {"accuracy", "dt_scale", "per_class", "confusion"} and entry["dt_scale"] == dt_scale
        assert set(entry["per_class"]) == set(SC10_CLASSES) and {"precision", "recall"} <= set(
            entry["per_class"]["yes"]
        )
        assert len(entry["confusion"]) == 10 and sum(map(sum, entry["confusion"])) == 10

    model = build_model("s4", **KWARGS["s4"])
    model.load_state_dict(load_file(str(s4_model)))
    model.eval()
    dataset = SpeechCommands(tiny_sc10, "sc10", "test")
    waveform = torch.stack([dataset[i][0] for i in range(len(dataset))])
    labels = torch.tensor(dataset.labels)
    with torch.no_grad():
        direct_16k = (model(waveform).argmax(-1) == labels).float().mean().item()
        resampled = torch.stack([SpeechCommands(tiny_sc10, "sc10", "test", 8000)[i][0] for i in range(len(dataset))])
        direct_8k = (model(resampled, dt_scale=2.0).argmax(-1) == labels).float().mean().item()
    assert document["rates"]["16000"]["accuracy"] == pytest.approx(direct_16k)
    assert document["rates"]["8000"]["accuracy"] == pytest.approx(direct_8k)


def test_dt_scale_two_at_8k_and_one_without_rescaling(s4_model, tiny_sc10, tmp_path, capsys, monkeypatch) -> None:
    seen: list[tuple[int, float]] = []
    forward = S4Classifier.forward

    def spy(self, waveform, dt_scale=1.0):
        seen.append((waveform.shape[-1], dt_scale))
        return forward(self, waveform, dt_scale)

    monkeypatch.setattr(S4Classifier, "forward", spy)
    out = tmp_path / "r.json"
    args = ("--model", s4_model, "--data", tiny_sc10, "--rates", 16000, 8000, "--no-rescale", "--json", out)
    assert run(capsys, *args)[0] == 0
    assert set(seen) == {(16000, 1.0), (8000, 2.0), (8000, 1.0)}
    rates = json.loads(out.read_text())["rates"]
    assert list(rates) == ["16000", "8000", "8000-no-rescale"] and rates["8000-no-rescale"]["dt_scale"] == 1.0


def test_decimate_and_comparison_with_the_cnn(s4_model, tiny_sc10, tmp_path, capsys) -> None:
    cnn = export_tiny(tmp_path, "cnn", tiny_sc10)
    out, folder = tmp_path / "c.json", tmp_path / "figures"
    args = ("--model", s4_model, "--compare", cnn, "--data", tiny_sc10, "--downsample", "decimate", "--json", out)
    code, printed, _ = run(capsys, *args, "--out", folder)
    assert code == 0 and "cnn:cnn/model" in printed and "s4:s4/model" in printed
    document = json.loads(out.read_text())
    assert document["model"]["kind"] == "s4" and document["compare"][0]["model"]["kind"] == "cnn"
    assert document["compare"][0]["rates"]["8000"]["dt_scale"] == 1.0  # a CNN has no step size
    assert (folder / "comparison.png").is_file() and (folder / "s4-model-confusion-8000.png").is_file()
    assert json.loads((folder / "cnn-model-confusion-16000.json").read_text())["classes"][0] == "yes"


def _one_line_error(code: int, stderr: str, *fragments: str) -> None:
    lines = [line for line in stderr.splitlines() if line.strip()]
    assert code == 2 and len(lines) == 1 and lines[0].startswith("error: "), stderr
    for fragment in fragments:
        assert fragment in lines[0]


def test_bad_input_one_line_errors(s4_model: Path, tiny_sc10: Path, tmp_path: Path, capsys) -> None:
    _one_line_error(
        *run(capsys, "--model", tmp_path / "no.safetensors", "--data", tiny_sc10)[::2], "no.safetensors", "not found"
    )
    _one_line_error(*run(capsys, "--model", s4_model, "--data", tmp_path / "nowhere")[::2], "nowhere", "does not exist")
    description = s4_model.with_suffix(".json")
    description.write_text(
        json.dumps({**json.loads(description.read_text()), "model": "cnn", "model_kwargs": KWARGS["cnn"]})
    )
    _one_line_error(*run(capsys, "--model", s4_model, "--data", tiny_sc10)[::2], "checkpoint from another model")
    (tmp_path / "last.ckpt").write_bytes(b"x")
    _one_line_error(*run(capsys, "--model", tmp_path / "last.ckpt", "--data", tiny_sc10)[::2], "training checkpoint")


def test_cli_subprocess_exit_status(tiny_sc10: Path, tmp_path: Path) -> None:
    root = Path(__file__).resolve().parents[1]
    command = [sys.executable, "-m", "training.evaluate", "--model", str(tmp_path / "x.json"), "--data", str(tiny_sc10)]
    result = subprocess.run(
        command, cwd=root, capture_output=True, text=True, env={**os.environ, "PYTHONPATH": str(root)}
    )
    _one_line_error(result.returncode, result.stderr, "x.safetensors", "not found")
    assert "Traceback" not in result.stderr
