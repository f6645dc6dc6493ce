"""A working tree whose kernel-path files come from an older commit, to measure "before" and "after" in one run.

    with baseline_tree("f8e3b8e") as root:
        before = measure(case, root=root)

The tree links every top-level entry of this checkout, except `s4/`, which is rebuilt from links to this
checkout's files with KERNEL_FILES replaced by their text at the commit. So the model, training and app code
are today's, and only the SSM kernel, the FFT convolution and the S4 layer are the old ones: the difference
is what those files changed. No `git stash` or checkout: the working tree is never touched.
"""

from __future__ import annotations

import subprocess
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
KERNEL_FILES = ("s4/cauchy.py", "s4/cauchy_triton.py", "s4/fft.py", "s4/kernel.py", "s4/layer.py", "s4/vandermonde.py")


def resolve(revision: str) -> str:
    """A revision name → its full commit hash (a ValueError naming it if git does not know it)."""
    result = subprocess.run(
        ["git", "rev-parse", "--verify", f"{revision}^{{commit}}"], cwd=ROOT, capture_output=True, text=True
    )
    if result.returncode != 0:
        raise ValueError(f"git does not know the revision {revision!r}: {result.stderr.strip()}")
    return result.stdout.strip()


def _file_at(commit: str, path: str) -> str | None:
    result = subprocess.run(["git", "show", f"{commit}:{path}"], cwd=ROOT, capture_output=True, text=True)
    return result.stdout if result.returncode == 0 else None


@contextmanager
def baseline_tree(revision: str) -> Iterator[Path]:
    """A temporary tree: this checkout with KERNEL_FILES as of `revision`. Removed on exit."""
    commit = resolve(revision)
    with tempfile.TemporaryDirectory(prefix="s4-baseline-") as tmp:
        root = Path(tmp)
        for entry in ROOT.iterdir():
            if entry.name not in ("s4", ".git"):
                (root / entry.name).symlink_to(entry)
        (root / "s4").mkdir()
        for source in (ROOT / "s4").glob("*.py"):
            (root / "s4" / source.name).symlink_to(source)
        for path in KERNEL_FILES:
            target = root / path
            target.unlink(missing_ok=True)
            text = _file_at(commit, path)
            if text is not None:
                target.write_text(text)
        yield root
