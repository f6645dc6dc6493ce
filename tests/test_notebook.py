"""The walkthrough notebook (issue 7) is stored clean, runs top to bottom in quick mode and draws every plot."""

from __future__ import annotations

import shutil
import time
from pathlib import Path

import pytest

nbformat = pytest.importorskip("nbformat")
nbclient = pytest.importorskip("nbclient")

ROOT = Path(__file__).resolve().parents[1]
NOTEBOOK = ROOT / "notebooks" / "s4_speech_walkthrough.ipynb"
# Each plotting cell saves its figure under this name (S4_WALKTHROUGH_FIGURES) and displays it inline.
FIGURES = {
    "hippo_matrix": "§1 HiPPO-LegS A as a heat map",
    "nplr_decomposition": "§1 A = S − p pᵀ, the NPLR decomposition",
    "hippo_eigenvalues": "§1 eigenvalues of A and Λ in the complex plane",
    "three_views": "§2 continuous, recurrent and convolutional views",
    "cauchy_kernel_values": "§3 Algorithm 1 against the dense kernel",
    "cauchy_kernel_cost": "§3 time and memory at growing L",
    "example_clip": "§4 a clip at 16 and 8 kHz",
    "accuracy_bars": "§4 S4 and CNN accuracy at 1x and 0.5x",
    "rate_sweep": "§4 accuracy against the input sampling rate",
    "kernels_16k_vs_8k": "§5 trained kernels at 16 kHz, 8 kHz with Δ·2, and unrescaled",
}
QUICK_BUDGET_S = 600  # the notebook takes ~1 min on 2 idle cores; the limit only catches a hang


def test_notebook_is_stored_without_outputs() -> None:
    notebook = nbformat.read(NOTEBOOK, as_version=4)
    nbformat.validate(notebook)
    code = [cell for cell in notebook.cells if cell.cell_type == "code"]
    assert code, "the notebook has no code cells"
    stored = [cell for cell in code if cell.outputs or cell.execution_count is not None]
    assert not stored, "strip the outputs before committing (the notebook is stored without outputs)"
    assert notebook.metadata["kernelspec"]["name"] == "python3"
    assert 'os.environ.get("S4_WALKTHROUGH_QUICK") == "1"' in code[0].source, "the first cell holds the size switch"


def test_notebook_runs_and_draws_every_plot(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    missing = [p for p in ("sox", "espeak-ng") if shutil.which(p) is None]
    if missing:
        pytest.skip(f"§4 generates speech and needs {', '.join(missing)}")
    figures = tmp_path / "figures"
    monkeypatch.setenv("S4_WALKTHROUGH_QUICK", "1")
    monkeypatch.setenv("S4_WALKTHROUGH_FIGURES", str(figures))
    monkeypatch.setenv("MPLBACKEND", "Agg")  # the notebook selects the inline backend itself
    monkeypatch.chdir(tmp_path)  # the notebook must not depend on the caller's folder, only on its own
    notebook = nbformat.read(NOTEBOOK, as_version=4)
    client = nbclient.NotebookClient(
        notebook,
        timeout=QUICK_BUDGET_S,
        kernel_name="python3",
        resources={"metadata": {"path": str(NOTEBOOK.parent)}},  # cwd = notebooks/, as for a reader
    )
    start = time.perf_counter()
    client.execute()  # raises CellExecutionError, with the cell and traceback, if any cell fails
    elapsed = time.perf_counter() - start
    print(f"notebook executed in {elapsed:.0f} s")

    outputs = [output for cell in notebook.cells if cell.cell_type == "code" for output in cell.outputs]
    assert not [o for o in outputs if o.output_type == "error"]
    images = [o for o in outputs if o.output_type == "display_data" and "image/png" in o.get("data", {})]
    assert len(images) >= len(FIGURES), f"{len(images)} inline images, expected at least {len(FIGURES)}"
    saved = {path.stem for path in figures.glob("*.png")}
    absent = {name: what for name, what in FIGURES.items() if name not in saved}
    assert not absent, f"plots not produced: {absent}"
    text = "".join(o.get("text", "") for o in outputs if o.output_type == "stream")
    assert "relative error, convolution vs recurrent" in text  # §2 prints its checks in plain sight
    assert elapsed < QUICK_BUDGET_S
