"""`aitrader --help` and each command's help load none of the heavy libraries, and the
lazy table's one-line help is each command's own (cli/lazy.py, decision 0015).

Timing lives in bench/cli_startup.py; what is asserted here is the cause of slowness:
which modules a help page imports."""

from __future__ import annotations

import json
import subprocess
import sys
import textwrap

import pytest
from typer.testing import CliRunner

from cli.main import Commands, app

HEAVY = ("sqlalchemy", "pydantic", "prefect", "pandas", "litellm", "httpx", "fastapi", "api")

HELP_PAGES = [
    [],
    ["council"],
    ["council", "run"],
    ["council", "execute"],
    ["council", "backtest"],
    ["data", "import"],
    ["backtest", "run"],
    ["db", "upgrade"],
    ["token", "create"],
    ["orders"],
    ["positions"],
    ["demo"],
    ["serve"],
    ["up"],
]


@pytest.mark.parametrize("args", HELP_PAGES, ids=lambda a: " ".join(a) or "aitrader")
def test_a_help_page_imports_no_heavy_library(args: list[str]) -> None:
    probe = textwrap.dedent(
        f"""
        import contextlib, io, json, sys
        from cli.main import app
        with contextlib.redirect_stdout(io.StringIO()), contextlib.suppress(SystemExit):
            app({[*args, "--help"]!r})
        heavy = sorted({{m.split(".")[0] for m in sys.modules}} & set({list(HEAVY)!r}))
        print(json.dumps(heavy))
        """
    )
    done = subprocess.run(
        [sys.executable, "-c", probe], capture_output=True, text=True, timeout=60, check=True
    )
    assert json.loads(done.stdout.strip().splitlines()[-1]) == [], done.stderr


def test_the_lazy_tables_help_is_each_commands_own() -> None:
    runner = CliRunner()
    for name, spec in Commands.lazy.items():
        command = spec.load(name)
        own = (command.help or "").strip().splitlines()[0]
        assert own == spec.help, f"{name}: table says {spec.help!r}, command says {own!r}"
        page = runner.invoke(app, [name, "--help"])
        assert page.exit_code == 0, page.output


def test_an_unknown_command_is_refused_with_usage() -> None:
    result = CliRunner().invoke(app, ["nope"])
    assert result.exit_code == 2
    assert "No such command 'nope'" in result.output


def test_the_realtime_app_loads_no_library_only_some_requests_use() -> None:
    """litellm (chat), pandas (market metrics, imports), alpaca-py (its accounts and source)
    and ONNX Runtime (a served model) load on first use: a server nobody chats with does not
    hold them (bench/cli_startup.py has its idle memory)."""
    probe = (
        "import sys, api.app; "
        "print(','.join(m for m in ('litellm', 'pandas', 'alpaca', 'prefect', 'onnxruntime')"
        " if m in sys.modules))"
    )
    done = subprocess.run(
        [sys.executable, "-c", probe], capture_output=True, text=True, timeout=60, check=True
    )
    assert done.stdout.strip() == ""
