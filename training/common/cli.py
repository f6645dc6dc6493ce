"""What the command-line tools share: a missing data folder caught before any work starts, and one-line errors."""

from __future__ import annotations

import sys
from collections.abc import Sequence
from pathlib import Path

# What a bad argument or file raises here: ModelFileError and ConfigError are ValueErrors, a missing file an OSError.
USER_ERRORS = (ValueError, OSError)


def require_data_folder(path: Path) -> None:
    """Raise FileNotFoundError for a --data that is not a folder, before a model loads or a run folder appears."""
    if not path.is_dir():
        raise FileNotFoundError(f"data folder {path} does not exist")


def require_data_folders(paths: Sequence[Path]) -> None:
    """`require_data_folder` for each of `paths`, and a ValueError for two folders of the same name: exported
    models and reports name each folder by its name alone."""
    for path in paths:
        require_data_folder(path)
    names = [path.resolve().name for path in paths]
    twice = sorted({name for name in names if names.count(name) > 1})
    if twice:
        raise ValueError(f"data folders must have different names; given more than once: {', '.join(twice)}")


def report_error(error: Exception) -> int:
    """Print `error: ...` on one line to stderr, even for a multi-line message; returns the exit status, 2."""
    print("error: " + " ".join(str(error).split()), file=sys.stderr)
    return 2
