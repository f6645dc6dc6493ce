"""What a user of this project waits for, before and after a change, each case in its own process:

- layer:    one S4 layer forward+backward, H=128, N=64, L=16000, batch 2, DPLR (S4) and diagonal (S4D) kernels:
            time and peak RSS above the process's warm-up baseline (glibc's mmap threshold fixed: STABLE_MALLOC);
- train:    clips/s of one training step (batch 32) of the bundled recipe (sc12-real.yaml) and of the paper's
            sc10.yaml model: forward, loss, backward, clipping, AdamW; random waveforms, no data loading;
- evaluate: clips/s of `training.evaluate` (files decoded, 16 kHz and 8 kHz) on generated clips, with a
            random model of the bundled recipe (sc12-real.yaml; the trained weights cost the same);
- live:     compute seconds per second of audio (one thread) of the app's live mode over 10 s of audio in
            0.1 s chunks at 16 and 8 kHz: the window engine, and the step engine for causal models.
"Before" runs the same cases on this checkout with the model-path files and the recipe of an older commit
(`benchmarks.baseline`): the layer, the filterbank and sc12-real.yaml as they were.

    python -m benchmarks.speed [--baseline REV] [--quick] [--only layer train evaluate live] [--threads 0]
    python -m benchmarks.speed --table benchmarks/results/speed-cpu-<date>.json   # the README table again
Writes benchmarks/results/speed-<machine>-<date>.json (speed-<machine>-quick-... with --quick).
"""

from __future__ import annotations

import argparse
import json
import tempfile
from contextlib import ExitStack
from pathlib import Path

from benchmarks.baseline import baseline_tree, resolve
from benchmarks.cases import write_noise_dataset
from benchmarks.common import ROOT, Case, human_bytes, machine, machine_name, measure, write_json

RECIPE, PAPER = "training/configs/sc12-real.yaml", "training/configs/sc10.yaml"
BUNDLED = "app/default_model/s4-sc12-real.safetensors"  # app.bundle.DEFAULT_MODEL; when missing, a random RECIPE
SECTIONS = ("layer", "train", "evaluate", "live")
# glibc moves its mmap threshold up after each large free, so whether a block of a few MiB is served by mmap
# (returned on free) or from the heap (kept) depends on the order of earlier frees: the diagonal layer peaked
# 137-168 MiB (DPLR 172-229) above its start from run to run. A fixed threshold makes the peak repeat to ±2 MiB.
STABLE_MALLOC = {"layer": {"MALLOC_MMAP_THRESHOLD_": str(2**20)}}


def cases(section: str, quick: bool, device: str, threads: int, data: str) -> list[tuple[dict, Case]]:
    """(what the row describes, the case) for one section."""
    if section == "layer":
        L = 1024 if quick else 16000
        return [
            ({"mode": mode, "H": 128, "N": 64, "L": L, "batch": 2}, Case("layer", "auto", 128, 64, L, batch=2,
             device=device, threads=threads, mode=mode))
            for mode in ("dplr", "diag")
        ]  # fmt: skip
    if section == "train":
        L, batch = (1600, 2) if quick else (16000, 32)
        return [
            ({"config": config, "L": L, "batch": batch}, Case("recipe", "auto", 0, 0, L, batch=batch, device=device,
             threads=threads, config=config))
            for config in (RECIPE, PAPER)
        ]  # fmt: skip
    if section == "evaluate":
        case = Case("evaluate", "auto", 0, 0, 16000, batch=64, device=device, threads=threads, config=RECIPE, data=data)
        return [({"model": f"{Path(RECIPE).stem} recipe", "rates": [16000, 8000], "batch": 64}, case)]
    rows = []
    for model, config in _live_models()[: 1 if quick else None]:
        engines = ["window"] + (["step"] if _causal(model, config) else [])
        for rate in (16000, 8000):
            for engine in engines:
                L = rate * (1 if quick else 10)
                case = Case("live", "auto", 0, 0, L, threads=1, config=config, model=model, rate=rate, engine=engine)
                rows.append(({"model": _model_name(model), "rate": rate, "engine": engine, "seconds": L / rate}, case))
    return rows


def _model_name(path: str) -> str:
    return Path(path).stem if (ROOT / path).is_file() else f"{Path(RECIPE).stem} (random init)"


def _live_models() -> list[tuple[str, str]]:
    """The bundled recipe's model, and every other model bundled in app/default_model (the app's default may
    be any of them): (model path, config for a random stand-in)."""
    others = sorted(p for p in (ROOT / "app" / "default_model").glob("*.safetensors") if p.name != Path(BUNDLED).name)
    return [(BUNDLED, RECIPE)] + [(str(p.relative_to(ROOT)), RECIPE) for p in others]


def _causal(model: str, config: str) -> bool:
    from benchmarks.cases import load

    return bool(getattr(load(Case("live", "auto", 0, 0, 1, config=config, model=model))[0], "causal", False))


def derived(section: str, result: dict, row: dict) -> dict:
    """Add the figure a reader wants: clips/s, or how many times faster than real time."""
    if "time_s" not in result:
        return result
    if section == "train":
        result["clips_per_s"] = row["batch"] / result["time_s"]
    elif section == "evaluate":
        result["clips_per_s"] = result["clips"] / result["time_s"]
    elif section == "live":
        result["x_real_time"] = 1 / result["rtf"]
    return result


def run(sections: list[str], quick: bool, device: str, threads: int, baseline: str | None) -> dict:
    report: dict = {"machine": machine(), "threads": threads, "quick": quick, "baseline": baseline}
    with ExitStack() as stack:
        old = stack.enter_context(baseline_tree(baseline)) if baseline else None
        data = ""
        if "evaluate" in sections:
            data = stack.enter_context(tempfile.TemporaryDirectory(prefix="s4-eval-data-"))
            write_noise_dataset(Path(data), clips_per_class=2 if quick else 32)
        for section in sections:
            if section == "live" and device != "cpu":
                continue  # the app runs on the CPU
            report[section] = []
            for row, case in cases(section, quick, device, threads, data):
                repeats = 1 if quick else 3
                env = STABLE_MALLOC.get(section)
                row["after"] = derived(section, measure(case, repeats, timeout_s=600, env=env), row)
                if old is not None:
                    row["before"] = derived(section, measure(case, repeats, timeout_s=600, root=old, env=env), row)
                    row["speedup"] = speedup(section, row)
                report[section].append(row)
                print(format_row(section, row), flush=True)
    return report


def _figure(section: str, result: dict | None) -> str:
    if result is None:
        return "—"
    if "skipped" in result:
        return f"skipped ({result['skipped']})"
    if section == "layer":
        return f"{result['time_s']:.2f} s, +{human_bytes(result['peak_bytes'])}"
    if section == "train":
        return f"{result['clips_per_s']:.1f} clips/s (+{human_bytes(result['peak_bytes'])})"
    if section == "evaluate":
        return f"{result['clips_per_s']:.0f} clips/s"
    return f"{result['x_real_time']:.1f}x real time ({result['engine']} engine)"


def describe(section: str, row: dict) -> str:
    if section == "layer":
        kernel = "DPLR (S4, Cauchy)" if row["mode"] == "dplr" else "diagonal (S4D, Vandermonde)"
        return f"S4 layer fwd+bwd, {kernel}, H={row['H']} N={row['N']} L={row['L']} B={row['batch']}"
    if section == "train":
        return f"training step, `{Path(row['config']).name}` model, B={row['batch']}, L={row['L']}"
    if section == "evaluate":
        return f"`training.evaluate`, {row['model']}, 16 + 8 kHz, batch {row['batch']}"
    return f"live mode, {row['model']}, {row['rate'] // 1000} kHz, one thread"


def speedup(section: str, row: dict) -> float | None:
    """How many times faster "after" is than "before" (time for the layer, clips/s or real-time factor for the
    rest); None when either side is missing or skipped."""
    before, after = row.get("before") or {}, row.get("after") or {}
    key = {"layer": "time_s", "live": "x_real_time"}.get(section, "clips_per_s")
    if key not in before or key not in after:
        return None
    return before[key] / after[key] if section == "layer" else after[key] / before[key]


def format_row(section: str, row: dict) -> str:
    before = _figure(section, row.get("before")) if "before" in row else "—"
    ratio = speedup(section, row)
    return f"| {describe(section, row)} | {before} | {_figure(section, row['after'])} | " + (
        f"{ratio:.2f}x |" if ratio is not None else "— |"
    )


def table(report: dict) -> str:
    """The README table (markdown) of a report."""
    baseline = f"before (`{report['baseline'][:7]}`)" if report.get("baseline") else "before"
    lines = [f"| case | {baseline} | after | speed-up |", "| --- | --- | --- | --- |"]
    for section in SECTIONS:
        lines += [format_row(section, row) for row in report.get(section, [])]
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--baseline", help="commit whose kernel files are measured as 'before' (e.g. f8e3b8e)")
    parser.add_argument("--quick", action="store_true", help="small sizes, one run each: a smoke test in seconds")
    parser.add_argument("--only", nargs="+", choices=SECTIONS, default=list(SECTIONS))
    parser.add_argument("--device", default="cpu", help="cpu or cuda (live mode always runs on the CPU)")
    parser.add_argument("--threads", type=int, default=0, help="CPU threads for layer/train/evaluate (0: all)")
    parser.add_argument("--table", type=Path, help="print the README table of an existing JSON and exit")
    args = parser.parse_args()
    if args.table:
        print(table(json.loads(args.table.read_text())))
        return
    baseline = resolve(args.baseline) if args.baseline else None
    print(f"S4 speed on {args.device}, threads={args.threads or 'all'}; each case in a fresh process")
    report = run(args.only, args.quick, args.device, args.threads, baseline)
    name = f"speed-{machine_name() if args.device != 'cpu' else 'cpu'}" + ("-quick" if args.quick else "")
    path = write_json(name, report)
    print("\n" + table(report) + f"\n\nwrote {path}")


if __name__ == "__main__":
    main()
