"""Progress output: bars on a terminal; in a file or pipe, plain lines every few seconds and no carriage returns
(training.common.progress, training.fitting.progress_callback, and their use by the generator and the training CLI)."""

from __future__ import annotations

import io
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import yaml
from test_evaluate import make_real_folder
from tqdm import tqdm

from training.common.progress import Every, LineProgress, is_terminal, progress_bar

ROOT = Path(__file__).resolve().parents[1]


class FakeClock:
    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


class FakeTerminal(io.StringIO):
    def isatty(self) -> bool:
        return True


def test_every_is_due_first_then_once_per_interval() -> None:
    clock = FakeClock()
    every = Every(10, clock)
    due = []
    for t in (0, 3, 9.9, 10, 15, 20.5):
        clock.now = t
        due.append(every.due())
    assert due == [True, False, False, True, False, True]


def test_line_progress_writes_a_line_per_interval_and_one_at_the_end() -> None:
    clock, stream = FakeClock(), io.StringIO()
    bar = LineProgress(100, "voices", "voice", stream, every=10, clock=clock)
    for step in range(100):
        clock.now = step * 0.5  # 2 voices a second: a line at 0 s, 10 s, ..., 45 s
        bar.update()
    clock.now = 50
    bar.close()
    bar.close()  # a second close writes nothing more
    lines = stream.getvalue().splitlines()
    assert "\r" not in stream.getvalue() and len(lines) == 6
    assert lines[0].startswith("voices: 1/100 (1%)") and lines[1] == "voices: 21/100 (21%), 2.10 voice/s, 38 s left"
    assert lines[-1] == "voices: 100/100 done in 50 s"


def test_progress_bar_is_tqdm_only_on_a_terminal() -> None:
    assert isinstance(progress_bar(3, "voices", stream=io.StringIO()), LineProgress)
    terminal = FakeTerminal()
    bar = progress_bar(3, "voices", stream=terminal)
    assert isinstance(bar, tqdm)
    bar.update(3)
    bar.close()
    assert "\r" in terminal.getvalue()  # a live bar redraws in place
    silent = io.StringIO()
    quiet = progress_bar(3, "voices", enabled=False, stream=silent)
    quiet.update(3)
    quiet.close()
    assert silent.getvalue() == ""
    assert not is_terminal(io.StringIO()) and not is_terminal(None) and is_terminal(FakeTerminal())


def _piped(module: str, *args: str, timeout: float = 300) -> str:
    """Run `python -m module args` with stdout and stderr to a pipe (as under nohup or CI); both, merged."""
    env = {**os.environ, "PYTHONPATH": str(ROOT), "OMP_NUM_THREADS": "1"}
    result = subprocess.run(
        [sys.executable, "-m", module, *args], cwd=ROOT, env=env, timeout=timeout,
        stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
    )  # fmt: skip
    assert result.returncode == 0, result.stdout[-3000:]
    return result.stdout


def test_generator_writes_plain_lines_into_a_pipe(tmp_path: Path) -> None:
    missing = [p for p in ("sox", "espeak-ng") if shutil.which(p) is None]
    if missing:
        pytest.skip(f"needs {', '.join(missing)}")
    out = tmp_path / "synth"
    log = _piped("training.synth", "--out", str(out), "--words", "yes", "--clips-per-word", "3",
                 "--workers", "1", "--engines", "espeak-ng", "--noise-seconds", "1")  # fmt: skip
    assert "\r" not in log
    assert "voices: 1/3 (33%)" in log and "voices: 3/3 done in" in log, log


def test_training_writes_plain_lines_into_a_pipe(tmp_path: Path) -> None:
    root = make_real_folder(tmp_path / "data")  # yes/no by 5 speakers: 4 training clips, one batch per epoch
    config = {
        "seed": 0,
        "model": {"kind": "s4", "d_model": 4, "n_layers": 1, "d_state": 4, "pool": [16], "dropout": 0.0},
        "data": {"batch_size": 4, "num_workers": 0},
        "trainer": {"max_epochs": 2, "log_every_n_steps": 1},
        "test_rates": [16000],
    }
    (tmp_path / "tiny.yaml").write_text(yaml.safe_dump(config))
    log = _piped("training.train", "--config", str(tmp_path / "tiny.yaml"), "--data", str(root),
                 "--out", str(tmp_path / "run"))  # fmt: skip
    assert "\r" not in log and "it/s]" not in log  # no tqdm redraws
    assert "epoch 1/2, step 1/2" in log and "loss " in log, log
    assert "epoch 1/2 validation: val_acc" in log and "epoch 2/2 validation: val_acc" in log, log
    assert "training done: 2 steps in" in log
