"""training.common.cli: what the command-line tools share."""

from __future__ import annotations

from pathlib import Path

import pytest

from training.common.cli import USER_ERRORS, report_error, require_data_folder
from training.fitting.config import ConfigError
from training.serving.export import ModelFileError


def test_missing_or_non_folder_data_is_named(tmp_path: Path) -> None:
    require_data_folder(tmp_path)
    (tmp_path / "a_file").write_text("")
    for path in (tmp_path / "nowhere", tmp_path / "a_file"):
        with pytest.raises(FileNotFoundError, match=f"data folder {path} does not exist"):
            require_data_folder(path)


def test_error_is_one_line_with_status_2(capsys: pytest.CaptureFixture[str]) -> None:
    assert report_error(ValueError("first line\n  second line\n")) == 2
    captured = capsys.readouterr()
    assert captured.out == ""
    assert captured.err == "error: first line second line\n"


def test_user_errors_cover_the_project_errors() -> None:
    for error in (ModelFileError("m"), ConfigError("c"), FileNotFoundError("f"), OSError("o"), ValueError("v")):
        assert isinstance(error, USER_ERRORS)
    assert not isinstance(RuntimeError("a bug"), USER_ERRORS)  # a bug keeps its traceback
