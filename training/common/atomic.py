"""Files replaced in one step: a reader, or a run resumed after a kill, finds the old file or the new one, whole."""

from __future__ import annotations

import os
import tempfile
from collections.abc import Callable
from pathlib import Path
from typing import BinaryIO


def atomic_write(path: str | os.PathLike, write: Callable[[BinaryIO], None]) -> None:
    """Call write(handle) on a temporary file beside `path`, fsync it, then rename it over `path`.

    Beside it, not in the system temp folder: a rename within one filesystem is atomic, while a move across two
    is a copy that a kill can cut short. The fsync comes first so that a crash after the rename cannot leave the
    new name pointing at data still unwritten.
    """
    path = Path(path)
    fd, temp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "wb") as handle:
            write(handle)
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(temp, path)
    except BaseException:
        Path(temp).unlink(missing_ok=True)
        raise
