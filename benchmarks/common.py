"""Shared machinery for the benchmarks: one case per fresh subprocess, so peak memory is honest.

A case is a kernel generation (Algorithm 1 with one Cauchy backend, or the dense-power reference), a full
S4 layer (either kernel), S4Classifier training steps, optionally with the backward pass, or one of the
application cases of `benchmarks.cases` (a config's training step, `training.evaluate`, live mode). The child
process builds the case, warms up at a tiny length, takes a memory baseline, then runs the full size: peak memory is
the peak RSS (CPU: VmHWM, reset to the current RSS at the baseline; ru_maxrss where that is not possible) or
`torch.cuda.max_memory_allocated` (CUDA) above that baseline. Time is the best of a few runs.

    python -m benchmarks.common '{"target": "kernel", "method": "chunked", "H": 128, "N": 64, "L": 16000}'
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import resource
import subprocess
import sys
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass
from pathlib import Path

import torch

ROOT = Path(__file__).resolve().parents[1]
# S4_BENCHMARK_RESULTS sends results elsewhere (the README test runs the benchmarks without touching these).
RESULTS = Path(os.environ.get("S4_BENCHMARK_RESULTS", ROOT / "benchmarks" / "results"))
MEMORY_LIMIT_BYTES = 8 * 2**30
TIME_LIMIT_S = 90
COMPLEX64 = 8


@dataclass(frozen=True)
class Case:
    """target: "kernel" | "layer" | "train" | "recipe" | "evaluate" | "live"; method: a Cauchy backend or
    "dense" (LSSL-style powers). The application cases (`benchmarks.cases`) read config, model, data, rate, engine.
    """

    target: str
    method: str
    H: int
    N: int
    L: int
    backward: bool = True
    batch: int = 1
    device: str = "cpu"
    threads: int = 0  # CPU threads; 0 keeps torch's default
    mode: str = "dplr"  # the layer's kernel: "dplr" (S4) or "diag" (S4D)
    config: str = ""  # a training config, relative to the repository root
    model: str = ""  # an exported model used instead of a random one of `config` when the file exists
    data: str = ""  # a Speech Commands folder ("evaluate")
    rate: int = 16000  # the audio rate ("live")
    engine: str = "window"  # the live engine ("live")


def estimated_bytes(case: Case) -> int:
    """A rough upper bound of the materialising methods' memory, to skip what cannot fit (others: O(H·L))."""
    if case.method == "naive":  # four (H, N, L/2) complex quotients, a few alive at once, more kept for backward
        return 4 * case.H * case.N * (case.L // 2) * COMPLEX64 * (6 if case.backward else 3)
    if case.method == "dense":  # the (H, N, L) Krylov block, doubled and kept for backward
        return case.H * case.N * case.L * COMPLEX64 * (6 if case.backward else 3)
    return 0


def measure(
    case: Case, repeats: int = 3, timeout_s: float = TIME_LIMIT_S, root: Path = ROOT, env: dict | None = None
) -> dict:
    """Run `case` in a fresh interpreter whose working tree is `root` (another one holds older code: see
    `benchmarks.baseline`), with `env` added to its environment.
    → {"time_s", "peak_bytes", ...} or {"skipped": reason}."""
    if estimated_bytes(case) > MEMORY_LIMIT_BYTES:
        return {"skipped": "too large (memory)"}
    command = [sys.executable, "-m", "benchmarks.common", json.dumps(asdict(case)), str(repeats)]
    try:
        result = subprocess.run(
            command, cwd=root, capture_output=True, text=True, timeout=timeout_s, env={**os.environ, **(env or {})}
        )
    except subprocess.TimeoutExpired:
        return {"skipped": f"too large (over {timeout_s:.0f} s)"}
    if result.returncode != 0:
        return {"skipped": f"failed: {result.stderr.strip().splitlines()[-1] if result.stderr.strip() else '?'}"}
    return json.loads(result.stdout.strip().splitlines()[-1])


def machine() -> dict:
    """Where the numbers come from, recorded next to them."""
    info = {"cpu": platform.processor() or platform.machine(), "cores": os.cpu_count()}
    if torch.cuda.is_available():
        info["gpu"] = torch.cuda.get_device_name()
    info["torch"] = torch.__version__
    return info


def add_device_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    # One thread by default on the CPU: on a shared machine, OpenMP threads that wait on each other at
    # every parallel region make two-thread timings swing by 5-10x; one thread gives stable ratios.
    parser.add_argument("--threads", type=int, default=1, help="CPU threads per case (0: torch's default)")


def backends(device: str) -> list[str]:
    """The Cauchy backends that can run on `device`, and the dense-power reference."""
    from s4.cauchy import triton_available

    return ["naive", "chunked"] + (["triton"] if triton_available(device) else []) + ["dense"]


def machine_name() -> str:
    return torch.cuda.get_device_name().split()[-1].lower() if torch.cuda.is_available() else "cpu"


def write_json(name: str, payload: dict, path: Path | None = None) -> Path:
    """Write `payload` to `path` (a --json option), or when None to RESULTS/<name>-<date>.json; returns where."""
    path = path or RESULTS / f"{name}-{time.strftime('%Y-%m-%d')}.json"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(payload, indent=1) + "\n")
    return path


def human_bytes(n: float) -> str:
    for unit in ("B", "KiB", "MiB", "GiB"):
        if abs(n) < 1024 or unit == "GiB":
            return f"{n:.0f} {unit}" if unit == "B" else f"{n:.1f} {unit}"
        n /= 1024
    raise AssertionError


# ---- the child process --------------------------------------------------------------------------------------


def _build(case: Case, L: int) -> Callable[[], dict | None]:
    """The work of one run at length L, parameters created once (they are O(H·N²) at most)."""
    from benchmarks import cases

    if case.target == "recipe":
        return cases.recipe_step(case, L)
    if case.target == "evaluate":
        return cases.evaluate_run(case, warm_up=L < case.L)
    if case.target == "live":  # L counts audio samples; the warm-up feeds one second
        return cases.live_run(case, seconds=L / case.rate if L == case.L else 1.0)
    from s4 import S4, S4Classifier
    from s4.ssm import DPLRSSM

    device = torch.device(case.device)
    backend = case.method  # "dense" is the naive route of `DPLRSSM.dense_kernel`

    if case.target == "train":
        model = S4Classifier(10, d_model=case.H, d_state=case.N, backend=backend).to(device).train()
        optimizer = torch.optim.AdamW(model.parameters(), lr=1e-3)
        waveform = torch.randn(case.batch, L, device=device)
        labels = torch.randint(0, 10, (case.batch,), device=device)

        def step() -> None:
            optimizer.zero_grad()
            torch.nn.functional.cross_entropy(model(waveform), labels).backward()
            optimizer.step()

        return step
    if case.target == "layer":
        layer = S4(case.H, mode=case.mode, d_state=case.N, l_max=L, backend=backend).to(device)
        x = torch.randn(case.batch, L, case.H, device=device)
        work = lambda: layer(x)  # noqa: E731
    else:
        ssm = DPLRSSM(case.H, case.N, l_max=L, backend=backend).to(device)
        work = lambda: ssm.kernel(L)  # noqa: E731

    def run() -> None:
        out = work()
        if case.backward:
            out.square().mean().backward()

    return run


def _sync(device: str) -> None:
    if device.startswith("cuda"):
        torch.cuda.synchronize()


def _peak(device: str) -> int:
    if device.startswith("cuda"):
        return torch.cuda.max_memory_allocated()
    if _status_kib("VmHWM") is not None:
        return _status_kib("VmHWM") * 1024
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024  # Linux reports KiB


def _status_kib(field: str) -> int | None:
    """A "VmRSS"/"VmHWM" line of /proc/self/status in KiB (None where there is no such file)."""
    try:
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith(field + ":"):
                return int(line.split()[1])
    except OSError:
        pass
    return None


def _cpu_baseline() -> int:
    """The RSS now, with the peak (VmHWM) reset to it, so that the runs' peak is measured from here: imports and
    set-up may have peaked higher before, which a plain ru_maxrss would hide (Linux ≥ 4.0; else ru_maxrss)."""
    try:
        Path("/proc/self/clear_refs").write_text("5")
        return _status_kib("VmRSS") * 1024
    except (OSError, TypeError):
        return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024


def _child(case: Case, repeats: int) -> dict:
    torch.manual_seed(0)
    if case.threads:
        torch.set_num_threads(case.threads)
    training = case.target in ("train", "recipe") or (case.backward and case.target in ("kernel", "layer"))
    extras = []
    with torch.enable_grad() if training else torch.no_grad():
        _build(case, 64)()  # loads libraries and kernels, so the baseline counts them
        run = _build(case, case.L)
        _sync(case.device)
        if case.device.startswith("cuda"):
            torch.cuda.reset_peak_memory_stats()
        baseline = torch.cuda.memory_allocated() if case.device.startswith("cuda") else _cpu_baseline()
        times = []
        for _ in range(repeats):
            start = time.perf_counter()
            extras.append(run() or {})  # the application cases report what they measure themselves (clips, rtf)
            _sync(case.device)
            times.append(time.perf_counter() - start)
            if sum(times) > TIME_LIMIT_S / 3:  # enough: the slow cases are not where the noise matters
                break
    best = times.index(min(times))
    return {"time_s": times[best], "peak_bytes": _peak(case.device) - baseline, "runs": len(times), **extras[best]}


if __name__ == "__main__":
    print(json.dumps(_child(Case(**json.loads(sys.argv[1])), int(sys.argv[2]) if len(sys.argv) > 2 else 3)))
