"""A working tree whose model-path files come from an older commit, to measure "before" and "after" in one run.

    with baseline_tree("f8e3b8e") as root:
        before = measure(case, root=root)

The tree links every entry of this checkout, except that each folder holding one of BASELINE_FILES is rebuilt
from links to this checkout's files with BASELINE_FILES replaced by their text at the commit. So the training
loop, the data and the app code are today's; the SSM kernels, the FFT convolution, the S4 layer, the filterbank
and the bundled recipe's config are the old ones: the difference is what those files changed. No `git stash` or
checkout: the working tree is never touched.
"""

from __future__ import annotations

import subprocess
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
KERNEL_FILES = ("s4/cauchy.py", "s4/cauchy_triton.py", "s4/fft.py", "s4/kernel.py", "s4/layer.py", "s4/vandermonde.py")
BASELINE_FILES = (*KERNEL_FILES, "s4/ssm.py", "s4/frontend.py", "training/configs/sc12-real.yaml")


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


def _link_farm(source: Path, target: Path, rebuilt: set[Path]) -> None:
    """target/<entry> → source/<entry> for every entry, except folders in `rebuilt`, which are farmed in turn."""
    target.mkdir(exist_ok=True)
    for entry in source.iterdir():
        if entry.name == ".git":
            continue
        if entry in rebuilt:
            _link_farm(entry, target / entry.name, rebuilt)
        else:
            (target / entry.name).symlink_to(entry)


@contextmanager
def baseline_tree(revision: str, files: tuple[str, ...] = BASELINE_FILES) -> Iterator[Path]:
    """A temporary tree: this checkout with `files` as of `revision` (absent there: absent here). Removed on exit."""
    commit = resolve(revision)
    with tempfile.TemporaryDirectory(prefix="s4-baseline-") as tmp:
        root = Path(tmp)
        rebuilt = {
            parent for path in files for parent in (ROOT / path).parents if parent != ROOT and ROOT in parent.parents
        }
        _link_farm(ROOT, root, rebuilt)
        for path in files:
            target = root / path
            target.unlink(missing_ok=True)
            text = _file_at(commit, path)
            if text is not None:
                target.write_text(text)
        yield root
