"""`aitrader council backtest` as a user meets it: refusals in one line before anything
runs, and one short run of the real flow (the offline analyst, two monthly sittings of two
symbols on the sample bars) printing the council beside its baselines."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

import pytest

from tests.conftest import REPO, Run


def _console(*args: str, database_url: str) -> subprocess.CompletedProcess[str]:
    """The installed console script, as a user's shell runs it (usage errors: cli.main.run)."""
    return subprocess.run(
        [str(Path(sys.executable).parent / "aitrader"), "council", "backtest", *args],
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=60,
        env={"PATH": "/usr/bin:/bin", "DATABASE_URL": database_url},
    )


@pytest.mark.parametrize(
    ("args", "line"),
    [
        (
            ["--start", "2019-06-30", "--end", "2019-01-01"],
            "error: Invalid value for '--end': 2019-01-01 is not after --start 2019-06-30 "
            "(see `aitrader council backtest --help`)",
        ),
        (
            ["--start", "2019-06-30", "--end", "2019-06-30"],
            "error: Invalid value for '--end': 2019-06-30 is not after --start 2019-06-30 "
            "(see `aitrader council backtest --help`)",
        ),
        (
            ["--start", "2019-01-01", "--end", "2019-06-30", "--rebalance", "daily"],
            "error: Invalid value for '--rebalance': 'daily' is not one of 'weekly', "
            "'monthly'. (see `aitrader council backtest --help`)",
        ),
        (
            ["--start", "2019-01-01"],
            "error: Missing option '--end'. (see `aitrader council backtest --help`)",
        ),
    ],
)
def test_a_usage_error_is_one_line_and_exit_code_2_before_the_database_is_opened(
    args: list[str], line: str
) -> None:
    done = _console(*args, database_url="postgresql://127.0.0.1:9/nowhere")  # never reached
    assert (done.returncode, done.stdout, done.stderr) == (2, "", line + "\n")


@pytest.mark.parametrize(
    ("args", "line"),
    [
        (
            ["--universe", "AAPL,nope"],
            "error: no daily bars for NOPE: see `aitrader data list`",
        ),
        (
            ["--start", "2010-01-04"],
            "error: --start: 2010-01-04 is outside the stored daily bars (2015-01-12 to "
            "2020-01-10): pick a day in that range, or import the bars that cover it",
        ),
        (
            ["--account", "nobody"],
            "error: no account 'nobody' is configured (ACCOUNTS has: paper)",
        ),
    ],
)
def test_what_the_flow_would_refuse_is_refused_before_it_runs(
    aitrader: Run, args: list[str], line: str
) -> None:
    options = {"--start": "2019-01-01", "--end": "2019-06-30", "--universe": "AAPL,MSFT"}
    for i in range(0, len(args), 2):
        options[args[i]] = args[i + 1]
    code, out = aitrader("council", "backtest", *(x for kv in options.items() for x in kv))
    assert code == 1, out
    assert out.strip() == line
    assert "Traceback" not in out


def test_two_monthly_sittings_print_the_council_beside_its_baselines(aitrader: Run) -> None:
    code, out = aitrader(
        "council", "backtest", "--start", "2019-04-01", "--end", "2019-05-31",
        "--universe", "AAPL,MSFT", "--rebalance", "monthly", "--budget", "1",
    )  # fmt: skip
    assert code == 0, out
    assert re.search(r"council backtest \d+: 2019-04-01 to 2019-05-31", out), out
    for row in ("total_return", "cagr", "sharpe", "max_drawdown", "trades (closed + open)"):
        assert row in out
    assert "buy and hold" in out
    assert "momentum" in out
    match = re.search(r"(\d+) of (\d+) monthly sittings; LLM cost \$(\S+): (\d+) requests", out)
    assert match, out
    assert match.group(1) == match.group(2) == "2"
    assert "warning:" not in out  # the offline analyst has no training cutoff
