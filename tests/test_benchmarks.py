"""The speed benchmark's machinery: the "before" tree, the README table, and (slow) a quick run end to end."""

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from benchmarks.baseline import BASELINE_FILES, baseline_tree, resolve
from benchmarks.speed import BUNDLED, speedup, table

ROOT = Path(__file__).resolve().parents[1]


def test_baseline_tree_swaps_exactly_the_baseline_files():
    with baseline_tree("HEAD") as root:
        for path in BASELINE_FILES:
            committed = subprocess.run(["git", "show", f"HEAD:{path}"], cwd=ROOT, capture_output=True, text=True)
            assert (root / path).read_text() == committed.stdout and not (root / path).is_symlink()
        assert (root / "s4" / "model.py").resolve() == ROOT / "s4" / "model.py"
        assert (root / "training" / "train.py").resolve() == ROOT / "training" / "train.py"
        assert not (root / "training").is_symlink() and (root / "app").resolve() == ROOT / "app"
        assert (root / "training" / "configs" / "sc10.yaml").resolve() == ROOT / "training" / "configs" / "sc10.yaml"
        probe = "import s4.fft, training.serving.models; print(s4.fft.__file__)"
        imported = subprocess.run([sys.executable, "-c", probe], cwd=root, capture_output=True, text=True, check=True)
        assert imported.stdout.strip() == str(root / "s4" / "fft.py")  # the old files win over the editable install
        probe = "import benchmarks.cases; print(benchmarks.cases.ROOT)"
        cases_root = subprocess.run([sys.executable, "-c", probe], cwd=root, capture_output=True, text=True, check=True)
        assert cases_root.stdout.strip() == str(root)  # so the cases read the baseline's recipe, not this checkout's
    assert not root.exists()


def test_unknown_baseline_is_named():
    with pytest.raises(ValueError, match="does not know the revision 'no-such-revision'"):
        resolve("no-such-revision")


def test_speedup_is_after_over_before_in_each_sections_own_figure():
    assert speedup("layer", {"before": {"time_s": 3.0}, "after": {"time_s": 1.5}}) == 2.0
    assert speedup("train", {"before": {"clips_per_s": 10.0}, "after": {"clips_per_s": 45.0}}) == 4.5
    assert speedup("live", {"before": {"x_real_time": 20.0}, "after": {"x_real_time": 10.0}}) == 0.5
    assert speedup("evaluate", {"before": {"skipped": "failed"}, "after": {"clips_per_s": 5.0}}) is None


def test_table_has_one_row_per_case_with_before_and_after():
    layer = {"time_s": 0.5, "peak_bytes": 200 * 2**20}
    report = {
        "baseline": "f8e3b8e" + "0" * 33,
        "layer": [{"mode": "diag", "H": 128, "N": 64, "L": 16000, "batch": 2, "before": layer, "after": layer}],
        "train": [{"config": "training/configs/sc10.yaml", "L": 16000, "batch": 16,
                   "after": {"time_s": 2.0, "peak_bytes": 2**30, "clips_per_s": 8.0}}],
        "live": [{"model": "m", "rate": 8000, "engine": "window", "seconds": 10,
                  "after": {"skipped": "failed: x"}}],
    }  # fmt: skip
    lines = table(report).splitlines()
    assert lines[0] == "| case | before (`f8e3b8e`) | after | speed-up |" and len(lines) == 5
    assert "diagonal (S4D, Vandermonde)" in lines[2] and lines[2].count("0.50 s, +200.0 MiB") == 2
    assert lines[2].endswith("| 1.00x |")
    assert lines[3].endswith("| — | 8.0 clips/s (+1.0 GiB) | — |")
    assert "8 kHz" in lines[4] and "skipped (failed: x)" in lines[4]


@pytest.mark.slow
def test_quick_speed_benchmark_runs_every_section(tmp_path):
    env = {**os.environ, "S4_BENCHMARK_RESULTS": str(tmp_path)}
    command = [sys.executable, "-m", "benchmarks.speed", "--quick", "--threads", "1", "--baseline", "HEAD"]
    result = subprocess.run(command, cwd=ROOT, env=env, capture_output=True, text=True, timeout=900)
    assert result.returncode == 0, result.stderr[-2000:]
    (path,) = tmp_path.glob("speed-*-quick-*.json")
    report = json.loads(path.read_text())
    for section, figure in (("layer", "time_s"), ("train", "clips_per_s"), ("evaluate", "clips_per_s")):
        assert all(figure in row["after"] and figure in row["before"] for row in report[section]), section
    assert {row["mode"] for row in report["layer"]} == {"dplr", "diag"}
    assert {row["rate"] for row in report["live"]} == {16000, 8000}
    assert all(row["after"]["x_real_time"] > 0 for row in report["live"])
    assert Path(BUNDLED).stem in result.stdout or "random init" in result.stdout  # the bundled model, or its stand-in
    assert result.stdout.count("| ") > 5  # the README table is printed
