"""The checks a file name can pass before anything heavy starts.

`aitrader data import missing.csv` used to load settings, the database and
pandas before saying the file was not there; these checks need only the
path, so the CLI runs them first and the readers run them again (a library
caller gets the same words).
"""

from __future__ import annotations

from pathlib import Path

from models.errors import DataFileError

BAR_SUFFIXES = (".parquet", ".pq", ".csv", ".csv.gz", ".txt", ".txt.gz")


def require_file(
    path: Path, suffixes: tuple[str, ...] | None = None, kinds: str = ".csv, .csv.gz or .parquet"
) -> Path:
    """`path` if it is a readable file (of one of `suffixes`), else DataFileError saying why."""
    if not path.exists():
        raise DataFileError(f"{path}: no such file")
    if path.is_dir():
        raise DataFileError(f"{path}: is a directory, not a file")
    if suffixes is not None and not path.name.lower().endswith(suffixes):
        raise DataFileError(f"{path}: unsupported file type (use {kinds})")
    try:
        with path.open("rb"):
            pass
    except OSError as exc:
        raise DataFileError(f"{path}: cannot read: {exc.strerror or exc}") from None
    return path
