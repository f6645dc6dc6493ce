"""training.train: the LightningModule learns, the CLI trains/exports/plots, resumes after a kill, runs DDP."""

from __future__ import annotations

import csv
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf
import torch
import yaml

from training.data import augment
from training.data.speech_commands import SILENCE, SpeechCommands
from training.fitting import lightning_module, train
from training.fitting.checkpoint_io import AtomicCheckpointIO
from training.fitting.config import ConfigError, validate
from training.fitting.datamodule import SpeechCommandsDataModule
from training.fitting.lightning_module import SpeechClassifier, warmup_cosine
from training.serving.export import load_model

ROOT = Path(__file__).resolve().parents[1]
TINY = {
    "seed": 0,
    "model": {"kind": "s4", "d_model": 8, "n_layers": 2, "d_state": 8, "pool": [16, 4], "dropout": 0.0},
    "data": {"batch_size": 10, "num_workers": 0},
    "optim": {"lr": 0.01},
    "trainer": {"max_epochs": 1, "log_every_n_steps": 1},
    "test_rates": [16000, 8000],
}


def write_config(path: Path, **sections) -> Path:
    config = {**TINY, **sections}
    path.write_text(yaml.safe_dump(config))
    return path


def run_cli(*args: str, timeout: float = 120) -> subprocess.CompletedProcess:
    env = {**os.environ, "PYTHONPATH": str(ROOT), "OMP_NUM_THREADS": "1"}
    command = [sys.executable, "-m", "training.train", *args]
    return subprocess.run(command, cwd=ROOT, env=env, capture_output=True, text=True, timeout=timeout)


def test_warmup_cosine_schedule() -> None:
    factor = warmup_cosine(10, 110)
    assert factor(0) == pytest.approx(0.1) and factor(9) == pytest.approx(1.0)
    assert factor(60) == pytest.approx(0.5) and factor(110) == pytest.approx(0.0) and factor(500) == 0.0


def test_plateau_scheduler_cuts_every_lr_after_patience_epochs_without_a_better_val_acc() -> None:
    config = validate({**TINY, "scheduler": {"name": "plateau", "factor": 0.5, "patience": 2}})
    configured = SpeechClassifier(config, n_classes=10).configure_optimizers()
    optimizer, schedule = configured["optimizer"], configured["lr_scheduler"]
    scheduler = schedule["scheduler"]
    assert isinstance(scheduler, torch.optim.lr_scheduler.ReduceLROnPlateau)
    assert schedule["monitor"] == "val_balanced_acc"
    assert (scheduler.mode, scheduler.factor, scheduler.patience) == ("max", 0.5, 2)
    start = [group["lr"] for group in optimizer.param_groups]
    assert sorted(set(start)) == [0.001, 0.01]  # the SSM group and the rest
    # A rising accuracy is progress (in "min" mode these three would already cut the LR), then two flat or
    # worse epochs are within patience, and the third one cuts every group's LR by `factor`.
    for epoch, val_acc in enumerate([0.5, 0.6, 0.7, 0.7, 0.65, 0.6]):
        scheduler.step(val_acc)
        expected = start if epoch < 5 else [0.5 * lr for lr in start]
        assert [group["lr"] for group in optimizer.param_groups] == pytest.approx(expected), epoch


def test_checkpoint_io_saves_into_a_new_folder_without_temp_files(tmp_path: Path) -> None:
    path = tmp_path / "checkpoints" / "last.ckpt"
    for step in (1, 2):  # the second save replaces the first
        AtomicCheckpointIO().save_checkpoint({"global_step": step, "weight": torch.ones(3) * step}, path)
    saved = torch.load(path, weights_only=True)
    assert saved["global_step"] == 2 and torch.equal(saved["weight"], torch.full((3,), 2.0))
    assert list(path.parent.iterdir()) == [path]


def test_tiny_model_loss_falls(tiny_sc10: Path) -> None:
    torch.manual_seed(0)
    dataset = SpeechCommands(tiny_sc10, "sc10", "train")
    waveform = torch.stack([dataset[i][0] for i in range(len(dataset))])
    label = torch.tensor(dataset.labels)
    module = SpeechClassifier(validate(TINY), n_classes=10)
    optimizer = module.configure_optimizers()
    losses = []
    for _ in range(15):
        loss = torch.nn.functional.cross_entropy(module(waveform), label)
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
        losses.append(loss.item())
    assert losses[-1] < 0.9 * losses[0], losses  # a frozen or diverging model fails this


def test_cli_trains_exports_tests_and_plots(tiny_sc10: Path, tmp_path: Path) -> None:
    config = write_config(tmp_path / "tiny.yaml")
    out = tmp_path / "run"
    assert train.main(["--config", str(config), "--data", str(tiny_sc10), "--out", str(out), "--max-steps", "3"]) == 0
    for name in (
        "model.safetensors",
        "model.json",
        "test_metrics.json",
        "learning_curves.png",
        "checkpoints/last.ckpt",
    ):
        assert (out / name).is_file(), name
    assert list((out / "logs").glob("version_*/metrics.csv")) and list((out / "tb").glob("version_*/events.*"))
    model, meta = load_model(out / "model.json")
    assert meta["model"] == "s4" and meta["sample_rate"] == 16000 and meta["clip_samples"] == 16000
    assert meta["classes"][:2] == ["yes", "no"] and meta["data"]["synthetic"] is True
    assert meta["config"]["trainer"]["max_steps"] == 3 and meta["model_kwargs"]["n_classes"] == 10
    assert set(meta["metrics"]) >= {"test_acc_16000", "test_acc_8000"}
    tested = json.loads((out / "test_metrics.json").read_text())
    assert tested["8000"]["dt_scale"] == 2.0 and tested["16000"]["n_clips"] == 10


def test_ema_is_the_moving_average_and_what_is_exported(tiny_sc10: Path, tmp_path: Path) -> None:
    # A fixed draw: the EMA's lerp and the formula below round differently in float32 (by ~3e-8), which some
    # random draws put past allclose's atol where an average lands near zero (about 1 seed in 8).
    torch.manual_seed(0)
    decay = 0.5
    module = SpeechClassifier(validate({**TINY, "optim": {"lr": 0.01, "ema_decay": decay}}), n_classes=10)
    snapshots = []
    for _ in range(3):  # stand-ins for optimizer steps: new weights, then the batch-end hook
        with torch.no_grad():
            for parameter in module.model.parameters():
                parameter.add_(torch.randn_like(parameter))
        snapshots.append([p.detach().clone() for p in module.model.parameters()])
        module.on_train_batch_end(None, None, 0)
    expected = snapshots[0]
    for later in snapshots[1:]:
        expected = [decay * e + (1 - decay) * w for e, w in zip(expected, later, strict=True)]
    averaged = list(module.inference_model().parameters())
    assert all(torch.allclose(a, e) for a, e in zip(averaged, expected, strict=True))
    assert not torch.allclose(averaged[0], snapshots[-1][0])  # the average, not the last weights
    assert not any(p.requires_grad for p in module.ema.parameters())

    config = write_config(tmp_path / "tiny.yaml", optim={"lr": 0.01, "ema_decay": 0.9})
    out = tmp_path / "run"
    assert train.main(["--config", str(config), "--data", str(tiny_sc10), "--out", str(out), "--max-steps", "3"]) == 0
    best = next((out / "checkpoints").glob("best-*.ckpt"))
    trained = SpeechClassifier.load_from_checkpoint(best, map_location="cpu")
    exported, _ = load_model(out / "model.safetensors")
    for name, tensor in exported.state_dict().items():
        assert torch.equal(tensor, trained.ema.module.state_dict()[name]), name
    weights = exported.state_dict().items()
    assert any(not torch.equal(tensor, trained.model.state_dict()[name]) for name, tensor in weights)


@pytest.mark.parametrize("decay", [1.0, 0, "0.9", -0.1])
def test_bad_ema_decay_is_a_config_error(decay) -> None:
    with pytest.raises(ConfigError, match="ema_decay"):
        validate({**TINY, "optim": {"ema_decay": decay}})


def test_mixup_blends_training_batches_only(tiny_sc10: Path, tmp_path: Path, monkeypatch) -> None:
    calls = []

    def spy(waveform, label, n_classes, alpha):
        calls.append((waveform.shape[0], n_classes, alpha))
        return augment.mixup(waveform, label, n_classes, alpha)

    monkeypatch.setattr(lightning_module, "mixup", spy)
    module = SpeechClassifier(validate({**TINY, "optim": {"mixup_alpha": 0.4}}), n_classes=10)
    waveform, label = torch.randn(4, 16000), torch.tensor([0, 1, 2, 3])
    loss = module.training_step((waveform, label, None), 0)
    loss.backward()
    assert loss.isfinite() and calls == [(4, 10, 0.4)]
    assert all(p.grad is not None and p.grad.isfinite().all() for p in module.parameters() if p.requires_grad)

    config = write_config(tmp_path / "tiny.yaml", optim={"lr": 0.01, "mixup_alpha": 0.4})
    out = tmp_path / "run"
    assert train.main(["--config", str(config), "--data", str(tiny_sc10), "--out", str(out), "--max-steps", "2"]) == 0
    assert len(calls) == 1 + 2  # and the run's two training steps: validation and testing see clean clips
    assert load_model(out / "model.safetensors")[1]["config"]["optim"]["mixup_alpha"] == 0.4


@pytest.mark.parametrize("alpha", [0, -0.2, "0.2", True])
def test_bad_mixup_alpha_is_a_config_error(alpha) -> None:
    with pytest.raises(ConfigError, match="mixup_alpha"):
        validate({**TINY, "optim": {"mixup_alpha": alpha}})


def make_speaker_folder(root: Path, synthetic: bool) -> Path:
    """yes/no by speakers aaaa, bbbb (train), cccc (validation), dddd (testing); bed by eeee (train);
    one `_silence_` clip (no speaker). synthetic: with a manifest.json that says so."""
    clips = {f"{w}/{s}_nohash_0.wav" for w in ("yes", "no") for s in ("aaaa", "bbbb", "cccc", "dddd")}
    for relative in sorted(clips | {"bed/eeee_nohash_0.wav", f"{SILENCE}/1037.wav"}):
        (root / relative).parent.mkdir(parents=True, exist_ok=True)
        sf.write(root / relative, 0.1 * np.sin(np.arange(16000) * 0.05), 16000, subtype="PCM_16")
    (root / "validation_list.txt").write_text("yes/cccc_nohash_0.wav\nno/cccc_nohash_0.wav\n")
    (root / "testing_list.txt").write_text("yes/dddd_nohash_0.wav\nno/dddd_nohash_0.wav\n")
    if synthetic:
        (root / "manifest.json").write_text(json.dumps({"synthetic": True, "description": "generated"}))
    return root


@pytest.mark.parametrize(
    ("subset", "synthetic", "heard"),
    [
        ("sc12", False, ["aaaa", "bbbb", "cccc", "eeee"]),
        ("sc10", False, ["aaaa", "bbbb", "cccc"]),
        ("sc10", True, None),
    ],
)
def test_export_names_the_speakers_it_heard_in_real_data(tmp_path: Path, subset: str, synthetic: bool, heard) -> None:
    root = make_speaker_folder(tmp_path / "speakers", synthetic)
    config = validate({**TINY, "data": {"subset": subset, "provenance": "Speech Commands v0.02 test partition"}})
    data = SpeechCommandsDataModule(root, subset=subset, batch_size=2)
    out = tmp_path / "run"
    out.mkdir()
    model = SpeechClassifier(config, len(data.classes)).inference_model()
    path = train.export_and_test(model, config, data, root, out)
    text = path.with_suffix(".json").read_text()
    meta = json.loads(text)["data"]
    assert meta["root"] == "speakers" and str(tmp_path) not in text  # no machine paths in an exported model
    if heard is None:  # generated voices: nothing to guard
        assert "heard_speakers" not in meta and "provenance" not in meta
    else:
        assert meta["heard_speakers"] == heard and meta["provenance"] == "Speech Commands v0.02 test partition"
    tested = json.loads((out / "test_metrics.json").read_text())
    assert tested["16000"]["n_clips"] == 2  # the test speaker was never heard: nothing left out
    metrics = json.loads(text)["metrics"]
    keyword_metrics = {f"test_commands_{name}_{rate}" for name in ("acc", "rejected") for rate in (16000, 8000)}
    if subset == "sc12":  # the words' accuracy and rejection (all test clips here are commands)
        assert keyword_metrics <= set(metrics)
        assert metrics["test_commands_acc_16000"] == tested["16000"]["commands"]["accuracy"]
    else:
        assert not keyword_metrics & set(metrics)


def _last_step(checkpoint: Path) -> int:
    return torch.load(checkpoint, map_location="cpu", weights_only=False)["global_step"]


@pytest.mark.slow
def test_killed_run_resumes_from_last_checkpoint(tiny_sc10: Path, tmp_path: Path) -> None:
    trainer = {"max_epochs": 100, "max_steps": 16, "log_every_n_steps": 1, "checkpoint_every_n_steps": 2}
    trainer["limit_val_batches"] = 1
    config = write_config(tmp_path / "tiny.yaml", data={"batch_size": 2, "num_workers": 0}, trainer=trainer)
    out = tmp_path / "run"
    args = ["--config", str(config), "--data", str(tiny_sc10), "--out", str(out)]
    env = {**os.environ, "PYTHONPATH": str(ROOT), "OMP_NUM_THREADS": "1"}
    process = subprocess.Popen(
        [sys.executable, "-m", "training.train", *args],
        cwd=ROOT,
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    last = out / "checkpoints" / "last.ckpt"
    deadline = time.time() + 120
    while time.time() < deadline and process.poll() is None:
        if last.exists() and _last_step(last) >= 4:
            break
        time.sleep(0.2)
    process.send_signal(signal.SIGKILL)
    process.wait()
    saved = _last_step(last)
    assert 4 <= saved < 16, "the run must be killed mid-way, after a checkpoint"

    assert train.main(args) == 2  # a second run into the same folder must not clobber it
    assert train.main([*args, "--resume"]) == 0
    assert _last_step(last) == 16
    resumed = max((out / "logs").glob("version_*"), key=lambda p: int(p.name.split("_")[1]))
    with open(resumed / "metrics.csv", newline="") as handle:
        steps = [int(row["step"]) for row in csv.DictReader(handle)]
    assert min(steps) >= saved - 1, f"resumed run restarted at step {min(steps)}, saved {saved}"


@pytest.mark.slow
def test_two_process_cpu_ddp(tiny_sc10: Path, tmp_path: Path) -> None:
    config = write_config(tmp_path / "tiny.yaml", data={"batch_size": 5, "num_workers": 0})
    out = tmp_path / "ddp"
    result = run_cli(
        "--config", str(config), "--data", str(tiny_sc10), "--out", str(out),
        "--accelerator", "cpu", "--devices", "2", "--max-steps", "2", timeout=240,
    )  # fmt: skip
    assert result.returncode == 0, result.stderr[-2000:]
    assert "distributed_backend=gloo" in result.stderr + result.stdout
    assert "MEMBER: 2/2" in result.stderr + result.stdout
    _, meta = load_model(out / "model.safetensors")
    assert meta["config"]["trainer"]["max_steps"] == 2


def _one_line_error(code: int, stderr: str, *fragments: str) -> None:
    assert code == 2
    lines = [line for line in stderr.splitlines() if line.strip()]
    assert len(lines) == 1 and lines[0].startswith("error: "), stderr
    assert "Traceback" not in stderr
    for fragment in fragments:
        assert fragment in lines[0]


def test_bad_input_exits_with_one_line(tiny_sc10: Path, tmp_path: Path) -> None:
    config = write_config(tmp_path / "tiny.yaml")
    result = run_cli("--config", str(config), "--data", str(tmp_path / "nowhere"), "--out", str(tmp_path / "o"))
    _one_line_error(result.returncode, result.stderr, "nowhere", "does not exist")


@pytest.mark.parametrize(
    ("extra", "fragments"),
    [
        (["--model.d_modle", "3"], ("model.d_modle",)),
        (["--set", "trainer.max_epoch=3"], ("trainer.max_epoch",)),
        (["--set", "model.kind=rnn"], ("rnn",)),
        (["--bogus"], ("--bogus",)),
    ],
)
def test_bad_config_keys(tiny_sc10: Path, tmp_path: Path, capsys, extra: list[str], fragments: tuple) -> None:
    config = write_config(tmp_path / "tiny.yaml")
    code = train.main(["--config", str(config), "--data", str(tiny_sc10), "--out", str(tmp_path / "o"), *extra])
    _one_line_error(code, capsys.readouterr().err, *fragments)


def test_missing_config_and_foreign_checkpoint(tiny_sc10: Path, tmp_path: Path, capsys) -> None:
    code = train.main(["--config", str(tmp_path / "absent.yaml"), "--data", str(tiny_sc10)])
    _one_line_error(code, capsys.readouterr().err, "absent.yaml", "not found")
    out = tmp_path / "o"
    (out / "checkpoints").mkdir(parents=True)
    torch.save({"hyper_parameters": {"config": {"model": {"kind": "cnn"}}}}, out / "checkpoints" / "last.ckpt")
    config = write_config(tmp_path / "tiny.yaml")
    code = train.main(["--config", str(config), "--data", str(tiny_sc10), "--out", str(out), "--resume"])
    _one_line_error(code, capsys.readouterr().err, "last.ckpt", "checkpoint from another model")
    (out / "checkpoints" / "last.ckpt").write_bytes(b"garbage")
    code = train.main(["--config", str(config), "--data", str(tiny_sc10), "--out", str(out), "--resume"])
    _one_line_error(code, capsys.readouterr().err, "last.ckpt", "not a training checkpoint")
