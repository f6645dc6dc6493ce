"""Every command in README.md's shell blocks is run: here (on tiny generated data, with the substitutions each
test names) or by .ci/run. A README command that no test knows about fails `test_every_command_is_covered`."""

from __future__ import annotations

import json
import os
import re
import shlex
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import pytest
from test_download import make_archive, server, url  # noqa: F401 (server is a fixture)

ROOT = Path(__file__).resolve().parents[1]
README = ROOT / "README.md"
REAL_DATA = "../shared/data/speech_commands_real"  # README's real-voice commands; tests swap in generated data
BOTH_FOLDERS = f"{REAL_DATA} ../shared/data/speech_commands_extra"
# The tiny generated set is one folder with no other words: nothing to balance "not a command" with, one provenance.
ONE_TINY_FOLDER = " --set data.balance=none --set data.provenance=null"
CI = ROOT / ".ci" / "run"

# How each README command is exercised: a pattern → the test that runs it ("ci": .ci/run runs it verbatim).
COVERAGE = {
    r"scripts/setup\.sh && \.venv/bin/python -m app": "test_demo_command_serves_the_app (setup.sh: ci)",
    r"scripts/setup\.sh && \.venv/bin/python -m pytest": "ci",
    r"\.venv/bin/python -m pytest -m slow": "ci",
    r"\.venv/bin/python -m training\.data download ": "test_data_commands",
    r"\.venv/bin/python -m training\.data info ": "test_data_commands",
    r"\.venv/bin/python -m training\.synth ": "test_data_commands",
    r"\.venv/bin/python -m training\.train ": "test_train_and_evaluate_commands",
    r"\.venv/bin/python -m training\.evaluate ": "test_train_and_evaluate_commands",
    r"\.venv/bin/python -m training\.calibrate ": "test_train_and_evaluate_commands",
    r"\.venv/bin/python -m benchmarks\.": "test_benchmark_commands",
    r"\.venv/bin/jupyter lab ": "test_notebook_command_serves_the_notebook",
    r"APP_SCREENSHOT=docs/app\.png \.venv/bin/python -m pytest ": "test_the_readme_screenshot_command",
}


def readme_commands() -> list[str]:
    """The commands of README's ```bash blocks, continuation lines joined, comments dropped."""
    commands = []
    for block in re.findall(r"```bash\n(.*?)```", README.read_text(), re.S):
        for line in block.replace("\\\n", " ").splitlines():
            line = line.split("  #")[0].strip()
            if line and not line.startswith("#"):
                commands.append(" ".join(line.split()))
    return commands


def commands_matching(pattern: str) -> list[str]:
    return [c for c in readme_commands() if re.match(pattern, c)]


def run(command: str, replace: dict[str, str] | None = None, extra: str = "", **kwargs) -> str:
    """Run a README command from the repo root with the given text substitutions and extra arguments."""
    for old, new in (replace or {}).items():
        assert old in command, f"substitution {old!r} no longer applies to: {command}"
        command = command.replace(old, new)
    argv = [sys.executable if word == ".venv/bin/python" else word for word in shlex.split(command + " " + extra)]
    result = subprocess.run(argv, cwd=ROOT, capture_output=True, text=True, timeout=600, **kwargs)
    assert result.returncode == 0, f"{command}\n{result.stdout[-2000:]}\n{result.stderr[-3000:]}"
    return result.stdout


def serve_until_it_answers(argv: list[str], env: dict, answers, name: str, timeout_s: float = 120) -> None:
    """Start a server (argv), call answers() until it stops raising OSError (not up yet), then stop the server.
    A server that exits, or one that does not answer within timeout_s, fails the test."""
    process = subprocess.Popen(argv, cwd=ROOT, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
    try:
        deadline = time.monotonic() + timeout_s
        while True:
            assert process.poll() is None, process.stdout.read().decode()[-2000:]
            try:
                answers()
                return
            except OSError:
                assert time.monotonic() < deadline, f"{name} did not answer within {timeout_s:.0f} s"
                time.sleep(1)
    finally:
        process.terminate()
        process.wait(timeout=30)


def test_every_command_is_covered():
    commands = readme_commands()
    assert len(commands) >= 12
    for command in commands:
        assert any(re.match(p, command) for p in COVERAGE), f"README command not run by any test: {command}"
    ci = CI.read_text()
    for pattern, how in COVERAGE.items():
        if how == "ci":
            for command in commands_matching(pattern):
                assert command.split("&& ")[-1] in ci, f".ci/run does not run: {command}"
    assert "scripts/setup.sh" in ci


def test_demo_command_serves_the_app(tmp_path):
    (command,) = commands_matching(r"scripts/setup\.sh && \.venv/bin/python -m app")
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    argv = [sys.executable, *command.split("&& ")[-1].split()[1:], "--port", str(port)]
    env = {**os.environ, "GRADIO_ANALYTICS_ENABLED": "False", "HF_HUB_OFFLINE": "1"}

    def answers() -> None:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/", timeout=5) as response:
            assert response.status == 200

    serve_until_it_answers(argv, env, answers, "the demo")


def test_data_commands(tmp_path, server):  # noqa: F811
    """download: served from 127.0.0.1 (--url added: no internet here); info and synth: on tiny data."""
    download, info, synth = (
        commands_matching(rf"\.venv/bin/python -m training\.{name} ")[0]
        for name in ("data download", "data info", "synth")
    )
    server.files["/sc.tar.gz"] = make_archive({"yes/a_nohash_0.wav": b"RIFF", "testing_list.txt": b""})
    root = str(tmp_path / "speech_commands")
    run(download, {"data/speech_commands": root}, f"--url {url(server, 'sc.tar.gz')}")
    assert (Path(root) / "yes" / "a_nohash_0.wav").read_bytes() == b"RIFF"
    out = str(tmp_path / "sc10-synth")
    run(synth, {"data/sc10-synth": out, "--clips-per-word 300": "--clips-per-word 4"})
    clips = [p for p in Path(out).glob("*/*.wav") if not p.parent.name.startswith("_")]
    assert len(clips) == 40
    counts = run(info, {"data/speech_commands": out})
    assert "yes" in counts and "testing" in counts


def _tiny_data(command: str, tiny_sc10: Path, tmp_path: Path) -> dict[str, str]:
    """Substitutions that point a README command at the tiny generated set and a temporary runs/ folder."""
    data = next(folders for folders in (BOTH_FOLDERS, REAL_DATA, "data/sc10-synth") if folders in command)
    return {data: str(tiny_sc10), "runs/": f"{tmp_path}/runs/"}


def test_train_and_evaluate_commands(tmp_path, tiny_sc10):
    """Each training command for two steps on the tiny generated set (the real-voice ones too: the real folder is
    not on a user's machine); the big configs shrunk to fit a CPU; then each calibration and evaluation command
    on those runs."""
    short = "--max-steps 2 --set trainer.max_time=null"
    for command in commands_matching(r"\.venv/bin/python -m training\.train "):
        if "sc10.yaml" in command:
            run(
                command,
                {"data/speech_commands": str(tiny_sc10), "--devices 4": f"--devices 1 --out {tmp_path}/runs/sc10"},
                f"{short} --model.d_model 8 --model.d_state 8 --model.n_layers 2 --set data.protocol=official",
            )
        else:
            one_folder = ONE_TINY_FOLDER if BOTH_FOLDERS in command else ""
            run(command, _tiny_data(command, tiny_sc10, tmp_path), short + one_folder)
    for command in commands_matching(r"\.venv/bin/python -m training\.calibrate "):
        assert "rejection offset" in run(command, _tiny_data(command, tiny_sc10, tmp_path))
    evaluations = commands_matching(r"\.venv/bin/python -m training\.evaluate ")
    assert len(evaluations) >= 2
    for i, command in enumerate(evaluations):
        report = tmp_path / f"eval-{i}.json"
        replace = {**_tiny_data(command, tiny_sc10, tmp_path), "--out eval": f"--out {tmp_path}/eval-{i}"}
        replace["app/default_model/s4-sc12-real.safetensors"] = f"{tmp_path}/runs/sc12-real/model.safetensors"
        run(command, {k: v for k, v in replace.items() if k in command}, f"--json {report}")
        document = json.loads(report.read_text())
        assert "16000" in document["rates"] and document["excluded"] == 0


@pytest.mark.slow
def test_benchmark_commands(tmp_path):
    for command in commands_matching(r"\.venv/bin/python -m benchmarks\."):
        if REAL_DATA in command and not (ROOT / REAL_DATA).is_dir():
            continue  # the real recordings exist beside this checkout in CI, not on a user's machine
        quick = {"benchmarks.kernel": "--lengths 1024", "benchmarks.speed": "--quick"}  # the slow test's sizes
        extra = next((flags for module, flags in quick.items() if module in command), "")
        run(command, extra=extra, env={**os.environ, "S4_BENCHMARK_RESULTS": str(tmp_path)})
    assert list(tmp_path.glob("*.json")) and list(tmp_path.glob("*.png"))


def test_python_examples_run():
    for block in re.findall(r"```python\n(.*?)```", README.read_text(), re.S):
        namespace: dict = {}
        exec(compile(block, "README.md", "exec"), namespace)  # noqa: S102 (our own README)
        assert namespace["logits"].shape == (2, 10)


def test_notebook_command_serves_the_notebook(tmp_path):
    """README's Jupyter command, without a browser: the server answers and serves the walkthrough notebook."""
    (command,) = commands_matching(r"\.venv/bin/jupyter lab ")
    argv = shlex.split(command)
    argv[0] = str(Path(sys.executable).with_name("jupyter"))  # the environment the tests run in
    (notebook,) = [word for word in argv if word.endswith(".ipynb")]
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    token = "readme-test"
    argv += ["--no-browser", "--ip=127.0.0.1", f"--port={port}", f"--IdentityProvider.token={token}"]
    if os.geteuid() == 0:  # Jupyter refuses root without it; README says so (CI and containers run as root)
        argv.append("--allow-root")
    # Jupyter's runtime and config files go to the test's folder, not the user's home.
    env = {**os.environ, "JUPYTER_RUNTIME_DIR": str(tmp_path / "runtime"), "JUPYTER_CONFIG_DIR": str(tmp_path)}

    def answers() -> None:
        # Given a file, Jupyter serves the file's folder and opens the file: the API path is its name.
        api = f"http://127.0.0.1:{port}/api/contents/{Path(notebook).name}?content=0&token={token}"
        with urllib.request.urlopen(api, timeout=5) as response:
            assert json.loads(response.read())["type"] == "notebook"
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/lab?token={token}", timeout=5) as response:
            assert response.status == 200 and b"JupyterLab" in response.read()

    serve_until_it_answers(argv, env, answers, "Jupyter")
