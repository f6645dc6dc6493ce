"""Scaling in L and N: kernel generation and a full S4 layer (forward+backward, H = 128, batch 1) for each
backend, the naive one and the dense-power reference; then S4Classifier training throughput at the SC10
config (d_model 128, 6 layers, d_state 64, 1 s clips at 16 kHz).

    python -m benchmarks.scaling [--quick] [--device cpu|cuda] [--threads 1]
Writes benchmarks/results/<machine>-<date>.json and benchmarks/results/scaling.png (log-log time and memory
against L). Cases whose estimated memory is over 8 GiB, or that run past the time limit, are reported as
"skipped (too large ...)".
"""

from __future__ import annotations

import argparse

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402

from benchmarks.common import (  # noqa: E402
    RESULTS,
    Case,
    add_device_arguments,
    backends,
    human_bytes,
    machine,
    machine_name,
    measure,
    write_json,
)

H = 128


def grid(lengths: list[int], states: list[int], device: str, threads: int) -> list[dict]:
    rows = []
    for target in ("kernel", "layer"):
        for N in states:
            for L in lengths:
                for method in backends(device):
                    result = measure(Case(target, method, H, N, L, device=device, threads=threads), repeats=2)
                    rows.append({"target": target, "method": method, "H": H, "N": N, "L": L, **result})
                    size = "skipped " + result["skipped"] if "skipped" in result else human_bytes(result["peak_bytes"])
                    time = f"{result['time_s'] * 1e3:10.1f} ms" if "time_s" in result else " " * 13
                    print(f"{target:>6} N={N:>3} L={L:>6} {method:>8} {time} {size}", flush=True)
    return rows


def throughput(device: str, threads: int, batch: int, L: int = 16000) -> dict:
    """Training clips per second of S4Classifier at the SC10 config (default backend for the device)."""
    result = measure(Case("train", "auto", H, 64, L, batch=batch, device=device, threads=threads), repeats=3)
    if "time_s" in result:
        result["clips_per_s"] = batch / result["time_s"]
    print(f"training, batch {batch}: {result}", flush=True)
    return {"batch": batch, "L": L, **result}


METHOD_COLORS = {"chunked": "tab:green", "triton": "tab:blue", "naive": "tab:red", "dense": "tab:gray"}


def plot(rows: list[dict], path) -> None:
    """Time and peak memory against L, log-log, one line per (target, method, N): colour = method,
    marker = N, solid = kernel generation, dashed = full layer."""
    figure, axes = plt.subplots(1, 2, figsize=(12, 4.5))
    lines = sorted({(r["target"], r["method"], r["N"]) for r in rows})
    for target, method, N in lines:
        points = [r for r in rows if (r["target"], r["method"], r["N"]) == (target, method, N) and "time_s" in r]
        if not points:
            continue
        L = [r["L"] for r in points]
        style = "-" if target == "kernel" else "--"
        label = f"{target} {method} N={N}"
        look = {"color": METHOD_COLORS.get(method, "black"), "marker": "o" if N == 64 else "s", "label": label}
        axes[0].loglog(L, [r["time_s"] for r in points], style, **look)
        axes[1].loglog(L, [max(r["peak_bytes"], 1) / 2**20 for r in points], style, **look)
    for axis, name in zip(axes, ("time (s)", "peak memory (MiB)"), strict=True):
        axis.set_xlabel("L")
        axis.set_ylabel(name)
        axis.grid(True, which="both", alpha=0.3)
    axes[1].legend(fontsize=7, ncol=2)
    figure.suptitle(f"S4 kernel generation (solid) and layer (dashed), forward+backward, H={H}")
    figure.tight_layout()
    figure.savefig(path, dpi=120)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--quick", action="store_true", help="L in {1k, 4k}, N = 64, batch 2")
    parser.add_argument("--batch", type=int, default=None, help="training batch (default 4 on CPU, 20 on GPU)")
    add_device_arguments(parser)
    args = parser.parse_args()
    lengths, states = ([1024, 4096], [64]) if args.quick else ([1024, 4096, 16384, 65536], [64, 256])
    batch = args.batch or (2 if args.quick else 20 if args.device.startswith("cuda") else 4)
    rows = grid(lengths, states, args.device, args.threads)
    training = throughput(args.device, args.threads, batch)
    name = machine_name() + ("-quick" if args.quick else "")
    path = write_json(name, {"machine": machine(), "threads": args.threads, "rows": rows, "training": training})
    figure = RESULTS / f"scaling{'-quick' if args.quick else ''}.png"
    plot(rows, figure)
    print(f"wrote {path} and {figure}")


if __name__ == "__main__":
    main()
