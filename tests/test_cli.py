"""The `aitrader` command as a user meets it: output, exit codes, one-line errors."""

from __future__ import annotations

import re
import shutil
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

import pytest
from sqlalchemy import func, select
from typer.testing import CliRunner

from cli.main import app
from db.engine import make_engine, make_session_factory
from models.market import Bar
from tests.conftest import REPO, SAMPLE_DATA
from tests.factories import bar_row, write_bar_csv

Run = Callable[..., tuple[int, str]]


@pytest.fixture
def aitrader(monkeypatch: pytest.MonkeyPatch, tmp_path: Path, fresh_db_url: str) -> Run:
    """Run `aitrader ...` in-process against a fresh database; returns (exit code, output)."""
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("DATABASE_URL", fresh_db_url)
    monkeypatch.setenv("LOG_LEVEL", "WARNING")
    runner = CliRunner()

    def run(*args: str) -> tuple[int, str]:
        result = runner.invoke(app, list(args))
        return result.exit_code, result.output

    return run


def _bar_count(url: str) -> int:
    engine = make_engine(url)
    try:
        with make_session_factory(engine)() as s:
            return s.scalar(select(func.count()).select_from(Bar)) or 0
    finally:
        engine.dispose()


def test_upgrade_import_list_round_trip(aitrader: Run, tmp_path: Path, fresh_db_url: str) -> None:
    code, out = aitrader("db", "upgrade")
    assert code == 0, out
    head = max(p.name[:4] for p in (REPO / "db" / "migrations" / "versions").glob("0*.py"))
    assert f"-> {head}" in " ".join(out.split())  # the newest migration (the path may wrap)
    path = write_bar_csv(
        tmp_path / "b.csv", [bar_row(symbol="AAA"), bar_row(symbol="BBB", low="12")]
    )
    code, out = aitrader("data", "import", str(path))
    assert code == 0, out
    assert "high_below_low" in out
    assert "1 bars inserted" in out
    code, out = aitrader("data", "import", str(path))
    assert "changes: 0 " in out
    code, out = aitrader("data", "list")
    assert code == 0
    assert "AAA" in out
    assert "BBB" not in out
    assert _bar_count(fresh_db_url) == 1


@pytest.mark.parametrize(
    ("make_file", "message"),
    [
        (lambda d: d / "missing.csv", "no such file"),
        (lambda d: write_bar_csv(d / "x.csv", [["1", "2"]], header=["a", "b"]), "unknown layout"),
        (lambda d: _write(d / "z.csv.gz", b"garbage"), "cannot read"),
    ],
)
def test_bad_files_fail_in_one_line_and_write_nothing(
    aitrader: Run,
    tmp_path: Path,
    fresh_db_url: str,
    make_file: Callable[[Path], Path],
    message: str,
) -> None:
    aitrader("db", "upgrade")
    code, out = aitrader("data", "import", str(make_file(tmp_path)))
    assert code == 1
    assert out.strip().startswith("error:")
    assert message in out
    assert "Traceback" not in out
    assert _bar_count(fresh_db_url) == 0


def _write(path: Path, content: bytes) -> Path:
    path.write_bytes(content)
    return path


def test_import_before_upgrade_says_what_to_run(aitrader: Run, tmp_path: Path) -> None:
    code, out = aitrader("data", "import", str(write_bar_csv(tmp_path / "b.csv", [bar_row()])))
    assert code == 1
    assert "aitrader db upgrade" in out


def test_unreachable_database_is_one_clear_line(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("DATABASE_URL", "postgresql://nobody@127.0.0.1:1/none")
    result = CliRunner().invoke(app, ["db", "upgrade"])
    assert result.exit_code == 1
    assert "cannot connect to postgresql+psycopg2://nobody@127.0.0.1:1/none" in result.output
    assert len(result.output.strip().splitlines()) == 1


def test_invalid_setting_names_the_variable(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("DATABASE_URL", "mysql://root@127.0.0.1/x")
    result = CliRunner().invoke(app, ["data", "list"])
    assert result.exit_code == 1
    assert "DATABASE_URL" in result.output
    assert "unsupported database" in result.output


def test_demo_migrates_imports_and_summarises(
    aitrader: Run, tmp_path: Path, fresh_db_url: str
) -> None:
    shutil.copytree(SAMPLE_DATA, tmp_path / "data" / "sample")
    code, out = aitrader("demo")
    assert code == 0, out
    assert "30 symbols, 37,715 daily bars, as of 2020-01-10" in out
    assert "conflicting_duplicate" in out
    code, out = aitrader("demo")
    assert code == 0, out
    assert "changes: 0 " in out
    assert _bar_count(fresh_db_url) == 37_715
    # Run again, it trades again: the paper account starts afresh, the old one is kept, and
    # the tables show the fresh account's orders, not the retired one's.
    assert "paper account 'paper' starts afresh with 100,000.00 cash; the previous one" in out
    assert out.count("paper@") == 1, out  # in that line only
    assert re.search(r"│ paper +│ \w+ +│ entry +│ buy .*│ filled", out), out


def test_installed_console_script_runs(tmp_path: Path) -> None:
    script = Path(sys.executable).parent / "aitrader"
    result = subprocess.run(
        [str(script), "data", "import", "--help"],
        capture_output=True,
        text=True,
        cwd=REPO,
        timeout=60,
        check=False,
    )
    assert result.returncode == 0, result.stderr
    assert "--symbol-column" in result.stdout
