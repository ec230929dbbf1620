"""A mistyped command line is refused in one line, exit code 2, like every other refusal;
help pages still print whole. Run as a user's shell runs it: the console entry point."""

from __future__ import annotations

import subprocess
import sys
import tomllib
from pathlib import Path

import pytest

from tests.conftest import REPO


def aitrader(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [str(Path(sys.executable).parent / "aitrader"), *args],  # the installed console script
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=60,
    )


def test_the_console_script_is_the_entry_that_shortens_usage_errors() -> None:
    project = tomllib.loads((REPO / "pyproject.toml").read_text())
    assert project["project"]["scripts"]["aitrader"] == "cli.main:run"


@pytest.mark.parametrize(
    ("args", "line"),
    [
        (
            ["council", "run", "--as-of", "2020-13-01"],
            "error: Invalid value for '--as-of': '2020-13-01' does not match the formats "
            "'%Y-%m-%d'. (see `aitrader council run --help`)",
        ),
        (
            ["orders", "--limit", "0"],
            "error: Invalid value for '--limit': Input should be greater than or equal to 1 "
            "(see `aitrader orders --help`)",
        ),
        (["nope"], "error: No such command 'nope'. (see `aitrader --help`)"),
        (
            ["council", "show"],
            "error: Missing argument 'run_id'. (see `aitrader council show --help`)",
        ),
    ],
)
def test_a_usage_error_is_one_line_and_exit_code_2(args: list[str], line: str) -> None:
    done = aitrader(*args)
    assert done.returncode == 2
    assert done.stdout == ""
    assert done.stderr == line + "\n"


def test_help_and_a_bare_command_still_print_the_whole_page() -> None:
    helped = aitrader("council", "--help")
    assert helped.returncode == 0
    assert "Usage: aitrader council" in helped.stdout
    assert "replay" in helped.stdout
    bare = aitrader()
    assert "Usage: aitrader" in bare.stdout + bare.stderr
    assert "council" in bare.stdout + bare.stderr


@pytest.mark.parametrize(
    ("args", "line"),
    [
        (["data", "import", "missing.csv"], "error: missing.csv: no such file"),
        (["data", "import", "tests"], "error: tests: is a directory, not a file"),
        (
            ["data", "import", "pyproject.toml"],
            "error: pyproject.toml: unsupported file type (use .csv, .csv.gz or .parquet)",
        ),
        (["data", "instruments", "missing.csv"], "error: missing.csv: no such file"),
    ],
)
def test_a_bad_file_is_refused_before_the_database_is_opened(
    args: list[str], line: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """With no database reachable the refusal is still about the file: it came first."""
    monkeypatch.setenv("DATABASE_URL", "postgresql://127.0.0.1:9/nowhere")
    done = aitrader(*args)
    assert (done.returncode, done.stderr) == (1, line + "\n")
