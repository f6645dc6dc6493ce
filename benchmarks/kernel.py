"""Kernel generation at H = 128, N = 64: time and peak memory of each Cauchy backend and the dense-power
reference, forward and forward+backward, with ratios to the naive (materialising) backend from the same run.

    python -m benchmarks.kernel [--lengths 1024 4096 16000] [--device cpu|cuda] [--threads 1]
Writes benchmarks/results/kernel-<machine>-<date>.json.
"""

from __future__ import annotations

import argparse

from benchmarks.common import Case, add_device_arguments, backends, human_bytes, machine, machine_name, measure
from benchmarks.common import write_json as write_results


def run(lengths: list[int], device: str, threads: int, H: int = 128, N: int = 64) -> list[dict]:
    rows = []
    for L in lengths:
        for backward in (False, True):
            by_method = {
                method: measure(Case("kernel", method, H, N, L, backward, device=device, threads=threads))
                for method in backends(device)
            }
            naive = by_method["naive"]
            for method, result in by_method.items():
                row = {"H": H, "N": N, "L": L, "backward": backward, "method": method, **result}
                if "time_s" in result and "time_s" in naive:
                    row["time_vs_naive"] = result["time_s"] / naive["time_s"]
                    row["memory_vs_naive"] = result["peak_bytes"] / max(naive["peak_bytes"], 1)
                rows.append(row)
                print(format_row(row), flush=True)
    return rows


def format_row(row: dict) -> str:
    head = f"L={row['L']:>6} {'fwd+bwd' if row['backward'] else 'fwd':>7} {row['method']:>8}"
    if "skipped" in row:
        return f"{head}  skipped ({row['skipped']})"
    text = f"{head} {row['time_s'] * 1e3:10.1f} ms {human_bytes(row['peak_bytes']):>10}"
    if "time_vs_naive" in row:
        text += f"   time x{row['time_vs_naive']:.3f}  memory x{row['memory_vs_naive']:.4f} of naive"
    return text


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--lengths", type=int, nargs="+", default=[1024, 4096, 16000])
    add_device_arguments(parser)
    args = parser.parse_args()
    print(f"kernel generation, H=128 N=64, {args.device}, threads={args.threads}: time (best of runs), peak memory")
    rows = run(args.lengths, args.device, args.threads)
    path = write_results(f"kernel-{machine_name()}", {"machine": machine(), "threads": args.threads, "rows": rows})
    print(f"wrote {path}")


if __name__ == "__main__":
    main()
