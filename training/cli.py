"""What the command-line tools share: a missing data folder caught before any work starts, and one-line errors."""

from __future__ import annotations

import sys
from pathlib import Path

# What a bad argument or file raises here: ModelFileError and ConfigError are ValueErrors, a missing file an OSError.
USER_ERRORS = (ValueError, OSError)


def require_data_folder(path: Path) -> None:
    """Raise FileNotFoundError for a --data that is not a folder, before a model loads or a run folder appears."""
    if not path.is_dir():
        raise FileNotFoundError(f"data folder {path} does not exist")


def report_error(error: Exception) -> int:
    """Print `error: ...` on one line to stderr, even for a multi-line message; returns the exit status, 2."""
    print("error: " + " ".join(str(error).split()), file=sys.stderr)
    return 2
