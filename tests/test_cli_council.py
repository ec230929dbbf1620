"""`aitrader council ...` and `aitrader up` as a user meets them: output and exit codes.

The council commands run the real flow on the sample data under the session's
Prefect harness; a priced model is the fake OpenAI server answering with the
offline analyst's answers, so a replay at $0 means something. `aitrader up`
is tested through the command lines it builds, not by starting a server.
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest
import yaml  # type: ignore[import-untyped]  # no stubs installed; prefect brings PyYAML
from prefect.cli.deploy._models import PrefectYamlModel
from prefect.flows import Flow, load_flow_from_entrypoint
from prefect.settings import PREFECT_API_URL
from sqlalchemy import func, select

from cli import up
from cli.up import stack_commands
from db.engine import make_engine, make_session_factory, unit_of_work
from db.queries import council as q
from deployments import serve as served
from models.council import CouncilRun
from models.enums import DecisionStatus, IntentStatus
from models.ops import LLMCall
from models.trading import Order, TradeIntent
from tests.conftest import REPO, Run
from tests.connection_counter import counting_port
from tests.fake_openai import FakeOpenAI

AS_OF = "2019-06-03"
PRICED = "openai/gpt-4o-mini"


def _run_id(out: str) -> int:
    match = re.search(r"council run (\d+) as of", out)
    assert match, out
    return int(match.group(1))


def _cost(out: str) -> str:
    match = re.search(r"LLM cost \$(\d+\.\d{6}): (\d+) calls, (\d+) answered from the cache", out)
    assert match, out
    return match.group(1)


def test_council_run_prints_the_decision_table_the_run_id_the_data_hash_and_the_cost(
    aitrader: Run,
) -> None:
    code, out = aitrader("council", "run", "--as-of", AS_OF, "--approval", "auto")
    assert code == 0, out
    assert f"council run {_run_id(out)} as of {AS_OF}: completed" in out
    for column in ("symbol", "action", "weight", "entry", "take-profit", "stop-loss", "status"):
        assert column in out
    assert re.search(r"\b(buy|sell)\b.*%.*approved", out), out
    assert re.search(r"data hash [0-9a-f]{64}", out), out
    assert _cost(out) == "0.000000"  # the offline analyst is free


def _counts(db_url: str) -> tuple[int, int]:
    """(trade intents, broker orders) in the database."""
    engine = make_engine(db_url)
    try:
        with make_session_factory(engine)() as session:
            intents = session.scalar(select(func.count()).select_from(TradeIntent)) or 0
            orders = session.scalar(select(func.count()).select_from(Order)) or 0
            return int(intents), int(orders)
    finally:
        engine.dispose()


def test_a_replay_asks_no_model_spends_nothing_never_trades_and_compares_the_decisions(
    aitrader: Run, priced_llm: FakeOpenAI, sample_db: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    code, first = aitrader(
        "council", "run", "--as-of", AS_OF, "--approval", "auto", "--models", PRICED
    )
    assert code == 0, first
    original = _run_id(first)
    assert float(_cost(first)) > 0
    intents, orders = _counts(sample_db)
    assert intents > 0  # the original run traded: a replay must not do it again

    from services.settings import get_settings

    with counting_port() as stopped:  # the model server is gone: any attempt is counted
        monkeypatch.setenv("LLM_API_BASE", stopped.base_url)
        get_settings.cache_clear()
        code, again = aitrader("council", "replay", "--as-of", AS_OF, "--models", PRICED)
        assert code == 0, again
        assert _cost(again) == "0.000000"
        calls, cached = re.findall(r"(\d+) calls, (\d+) answered from the cache", again)[0]
        assert calls == cached
        assert int(calls) > 0
        assert f"same decisions as council run {original}" in again
        assert "replay from the response cache: no model asked, nothing executed" in again

        # Another model was never asked this week: every member abstains, "not in cache".
        code, other = aitrader("council", "replay", "--as-of", AS_OF, "--models", "openai/gpt-4o")
        assert stopped.connections == 0
    assert code == 0, other
    assert re.search(r"LLM cost \$0\.000000: (\d+) calls, 0 answered from the cache", other), other
    assert "not in cache: no model was asked, those members abstained" in other
    assert _counts(sample_db) == (intents, orders)  # no intent, no order
    engine = make_engine(sample_db)
    with make_session_factory(engine)() as session:
        runs = session.scalars(select(CouncilRun).order_by(CouncilRun.id)).all()
        assert [bool((r.params or {}).get("replay")) for r in runs] == [False, True, True]
        for replayed in runs[1:]:
            assert all(
                d.status is DecisionStatus.PROPOSED for d in q.decision_rows(session, replayed.id)
            )
        refused = session.scalars(select(LLMCall).where(LLMCall.run_id == runs[2].id)).all()
        assert refused
        assert all(c.error and "not in cache" in c.error for c in refused)
        assert all(c.attempts == 0 and c.cost_usd == 0 for c in refused)
    engine.dispose()


def test_a_replay_that_decides_differently_names_each_changed_decision(
    aitrader: Run, sample_db: str
) -> None:
    code, out = aitrader("council", "run", "--as-of", AS_OF, "--approval", "auto")
    assert code == 0, out
    first = _run_id(out)
    engine = make_engine(sample_db)
    with unit_of_work(make_session_factory(engine)) as session:
        changed = q.decision_rows(session, first)[0]
        changed.target_weight = Decimal("0.01")  # as if the earlier run had decided otherwise
        symbol = changed.symbol
    engine.dispose()
    code, out = aitrader("council", "replay", "--as-of", AS_OF)
    assert code == 0, out
    assert f"decisions differ from council run {first} (then -> now):" in out
    changes = out.split("(then -> now):")[1].strip().splitlines()
    assert len(changes) == 1
    assert changes[0].startswith(f"{symbol}: ")
    assert " 1.0%, entry " in changes[0]


def test_a_run_over_symbols_without_bars_is_refused_before_it_starts(aitrader: Run) -> None:
    code, out = aitrader("council", "run", "--approval", "auto", "--symbols", "nvda,FOO")
    assert code == 1
    assert out.strip() == "error: no daily bars for FOO: see `aitrader data list`"


def test_a_run_stopped_by_its_budget_says_why_and_exits_3(
    aitrader: Run, priced_llm: FakeOpenAI
) -> None:
    code, out = aitrader(
        "council", "run", "--as-of", AS_OF, "--approval", "auto", "--models", PRICED,
        "--budget", "0.004",
    )  # fmt: skip
    assert code == 3, out
    assert "cancelled: stopped on its LLM budget" in out
    assert "no decision was made" in out


def test_a_run_that_fails_prints_its_cause_in_one_line_and_exits_1(
    aitrader: Run, priced_llm: FakeOpenAI
) -> None:
    code, out = aitrader(
        "council", "run", "--approval", "auto",
        "--models", "openai/no-such-priced-model", "--budget", "1",
    )  # fmt: skip
    assert code == 1, out
    # no --as-of: the latest stored day, said before anything runs
    assert "council as of 2020-01-10 (no as_of given: the latest day with stored daily bars)" in out
    [line] = [x for x in out.splitlines() if x.startswith("error:")]
    assert "failed: no price for model 'openai/no-such-priced-model'" in line, out
    assert "ExceptionGroup" not in line  # the cause, not its wrapper (the logs may say more)


def test_a_council_as_of_a_day_to_come_is_refused_in_one_line(aitrader: Run) -> None:
    code, out = aitrader("council", "run", "--approval", "auto", "--as-of", "2999-01-01")
    assert code == 1, out
    [line] = [x for x in out.splitlines() if x.startswith("error:")]
    assert "as_of: 2999-01-01 is after today" in line


def test_a_council_as_of_a_day_past_the_stored_bars_is_refused_with_their_range(
    aitrader: Run,
) -> None:
    """The README's walkthrough once sat 2020-06-26 on a sample that ends 2020-01-10."""
    code, out = aitrader("council", "run", "--approval", "auto", "--as-of", "2020-06-26")
    assert code == 1, out
    assert out.strip() == (
        "error: as_of: 2020-06-26 is outside the stored daily bars (2015-01-12 to 2020-01-10): "
        "pick a day in that range, or import the bars that cover it"
    )


def test_approving_an_unknown_run_fails_in_one_line(aitrader: Run) -> None:
    code, out = aitrader("council", "approve", "999")
    assert code == 1
    assert out.strip() == "error: council run 999 does not exist"


def _filled_decision(db_url: str) -> int:
    engine = make_engine(db_url)
    try:
        with make_session_factory(engine)() as session:
            stmt = select(TradeIntent.decision_id).where(TradeIntent.status == IntentStatus.FILLED)
            found = session.scalars(stmt).first()
    finally:
        engine.dispose()
    assert found is not None, "the sample week should fill at least one buy"
    return found


def test_show_and_audit_print_the_run_and_the_chain_behind_a_decision(
    aitrader: Run, sample_db: str
) -> None:
    code, out = aitrader("council", "run", "--as-of", AS_OF, "--approval", "auto")
    assert code == 0, out
    run_id = _run_id(out)
    code, shown = aitrader("council", "show", str(run_id))
    assert code == 0, shown
    assert f"council run {run_id} as of {AS_OF}: completed" in shown
    assert "take-profit" in shown
    assert re.search(r"decision \d+ approved by auto", shown), shown

    decision = _decisions(sample_db, run_id)[0]
    code, audit = aitrader("council", "audit", str(decision))
    assert code == 0, audit
    assert f"decision {decision}: " in audit
    assert re.search(r"pitch \d+ by pm-\w+: (buy|sell) ", audit), audit
    assert "votes" in audit
    assert re.search(r"research: \d+ notes by analyst-", audit), audit
    for stage in ("research", "pitch", "review", "chairman"):
        assert stage in audit
    assert "offline/" in audit  # the model of each call
    assert re.search(r"data hash [0-9a-f]{64}", audit), audit
    # down to the money: the paper account's verdict, and for a sent order its legs and fill
    assert re.search(r"account paper: (buy|sell) \d+ [A-Z]+, (filled|risk_rejected)", audit)
    code, audit = aitrader("council", "audit", str(_filled_decision(sample_db)))
    assert re.search(r"order \d+ entry ait-[0-9a-f]{40}: filled", audit), audit
    assert re.search(r"order \d+ take_profit ait-[0-9a-f]{40}-tp: accepted", audit), audit
    assert re.search(r"fill paper-fill-\d+: \d+ @ [\d,.]+", audit), audit

    code, out = aitrader("council", "approve", str(run_id))
    assert code == 1
    assert f"council run {run_id} is not paused: its flow run is Completed" in out


def test_a_manual_run_waits_until_an_approver_in_another_process_resumes_it(
    aitrader: Run, sample_db: str, tmp_path: Path
) -> None:
    script = Path(sys.executable).parent / "aitrader"
    env = os.environ | {
        "PREFECT_API_URL": str(PREFECT_API_URL.value()),  # the harness's server
        "PYTHONUNBUFFERED": "1",
    }
    council = subprocess.Popen(
        [str(script), "council", "run", "--as-of", AS_OF],
        stdout=subprocess.PIPE,
        stderr=subprocess.DEVNULL,
        text=True,
        cwd=tmp_path,
        env=env,
    )
    assert council.stdout is not None
    try:
        shown = []
        for line in council.stdout:
            shown.append(line)
            if "aitrader council approve" in line:
                break
        run_id = int(re.findall(r"aitrader council approve (\d+)", "".join(shown))[0])
        assert f"council run {run_id} is waiting for approval" in " ".join("".join(shown).split())
        proposed = _decisions(sample_db, run_id)
        rejected = proposed[0]

        code, out = aitrader("council", "approve", str(run_id), "--reject", "999999")
        assert code == 1
        assert f"council run {run_id} has no decisions [999999]" in out

        code, out = aitrader(
            "council", "approve", str(run_id), "--reject", str(rejected),
            "--note", "too big", "--by", "tester",
        )  # fmt: skip
        assert code == 0, out
        assert f"council run {run_id} resumed by tester" in out
        rest, _ = council.communicate(timeout=60)
    finally:
        council.kill()
    assert council.returncode == 0, rest
    assert re.search(rf"^\s*{rejected}\s.*rejected", rest, re.MULTILINE), rest
    statuses = _statuses(sample_db, run_id)
    assert statuses.pop(rejected) == (DecisionStatus.REJECTED, "tester", "too big")
    assert set(statuses.values()) == {(DecisionStatus.APPROVED, "tester", "too big")}


def _decisions(url: str, run_id: int) -> list[int]:
    return list(_statuses(url, run_id))


def _statuses(url: str, run_id: int) -> dict[int, tuple[DecisionStatus, str | None, str | None]]:
    engine = make_engine(url)
    try:
        with make_session_factory(engine)() as session:
            assert session.scalar(select(CouncilRun.id).where(CouncilRun.id == run_id))
            return {
                d.id: (d.status, d.approved_by, d.note) for d in q.decision_rows(session, run_id)
            }
    finally:
        engine.dispose()


# --- how it runs: `aitrader up`, prefect.yaml, deployments/serve.py -------------------


def test_up_starts_prefect_then_the_served_flows_then_the_realtime_server(tmp_path: Path) -> None:
    home = tmp_path / "prefect"
    children = stack_commands(
        host="0.0.0.0", port=8001, prefect_port=4300, prefect_home=home, python="/py"
    )
    assert [c.name for c in children] == ["prefect", "deployments", "realtime"]
    env = (
        "env",
        f"PREFECT_HOME={home}",
        "PREFECT_API_URL=http://127.0.0.1:4300/api",
        f"PREFECT_SERVER_DATABASE_CONNECTION_URL=sqlite+aiosqlite:///{home}/prefect.db",
    )
    server, flows, realtime = (c.argv for c in children)
    assert server == (*env, "/py", "-m", "prefect", "server", "start",
                      "--host", "127.0.0.1", "--port", "4300")  # fmt: skip
    assert flows == (*env, "/py", "-m", "deployments.serve")
    assert realtime == (
        *env,
        "/py",
        "-m",
        "cli.main",
        "serve",
        "--host",
        "0.0.0.0",
        "--port",
        "8001",
    )


def test_up_resolves_a_relative_prefect_home_against_the_working_directory(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    children = stack_commands(host="h", port=1, prefect_port=2, prefect_home=Path("data/prefect"))
    assert f"PREFECT_HOME={tmp_path / 'data' / 'prefect'}" in children[0].argv


def test_prefect_yaml_declares_the_weekly_council_that_deployments_serve_serves() -> None:
    doc = yaml.safe_load((REPO / "prefect.yaml").read_text())
    PrefectYamlModel.model_validate(doc)  # the shape `prefect deploy` reads
    council, sync, backtest, judged, trainer, scan, suggest, sentiment = doc["deployments"]
    assert council["name"] == served.WEEKLY_COUNCIL == "weekly-council"
    assert council["entrypoint"] == "flows/weekly_council.py:weekly_council"
    flow: Flow[Any, Any] = load_flow_from_entrypoint(str(REPO / council["entrypoint"]))
    assert isinstance(flow, Flow)
    assert flow.name == "weekly-council"
    assert council["work_pool"]["name"] == "aitrader-process"
    assert council["concurrency_limit"] == served.WEEKLY_COUNCIL_CONCURRENCY == 1
    assert council["parameters"] == served.WEEKLY_COUNCIL_PARAMETERS == {"approval": "manual"}
    (schedule,) = council["schedules"]
    assert (schedule["cron"], schedule["timezone"]) == ("0 6 * * 1", "America/New_York")
    assert schedule["cron"] == served.WEEKLY_COUNCIL_CRON
    assert schedule["timezone"] == served.WEEKLY_COUNCIL_TIMEZONE

    deployment = served.council_deployment()  # built, not served: importing starts nothing
    assert deployment.name == council["name"]
    assert deployment.entrypoint == "flows.weekly_council.weekly_council"
    assert deployment.concurrency_limit == 1
    assert deployment.parameters == {"approval": "manual"}
    (served_schedule,) = deployment.schedules or []
    assert served_schedule.schedule.cron == schedule["cron"]  # type: ignore[union-attr]
    assert served_schedule.schedule.timezone == schedule["timezone"]  # type: ignore[union-attr]

    # the daily account sync: the same in both places, and a loadable flow
    assert sync["name"] == served.ACCOUNT_SYNC == "account-sync"
    sync_flow: Flow[Any, Any] = load_flow_from_entrypoint(str(REPO / sync["entrypoint"]))
    assert isinstance(sync_flow, Flow)
    assert sync_flow.name == "sync-accounts"
    served_sync = served.sync_deployment()
    assert served_sync.entrypoint == "flows.execution.sync_accounts"
    (sync_schedule,) = sync["schedules"]
    (served_sync_schedule,) = served_sync.schedules or []
    assert sync_schedule["cron"] == served.ACCOUNT_SYNC_CRON
    assert served_sync_schedule.schedule.cron == sync_schedule["cron"]  # type: ignore[union-attr]
    assert served_sync_schedule.schedule.timezone == sync_schedule["timezone"]  # type: ignore[union-attr]
    assert sync["concurrency_limit"] == served_sync.concurrency_limit == 1

    # backtests: on request only, the same in both places
    assert backtest["name"] == served.BACKTEST == "backtest"
    backtest_flow: Flow[Any, Any] = load_flow_from_entrypoint(str(REPO / backtest["entrypoint"]))
    assert backtest_flow.name == "backtest"
    served_backtest = served.backtest_deployment()
    assert served_backtest.entrypoint == "flows.backtest.backtest"
    assert backtest["schedules"] == []
    assert not served_backtest.schedules
    assert backtest["concurrency_limit"] == served_backtest.concurrency_limit
    assert served_backtest.concurrency_limit == served.BACKTEST_CONCURRENCY

    # council backtests: on request only, one at a time, the same in both places
    assert judged["name"] == served.COUNCIL_BACKTEST == "council-backtest"
    judged_flow: Flow[Any, Any] = load_flow_from_entrypoint(str(REPO / judged["entrypoint"]))
    assert judged_flow.name == "council-backtest"
    served_judged = served.council_backtest_deployment()
    assert served_judged.entrypoint == "flows.council_backtest.council_backtest"
    assert judged["schedules"] == []
    assert not served_judged.schedules
    assert judged["concurrency_limit"] == served_judged.concurrency_limit
    assert served_judged.concurrency_limit == served.COUNCIL_BACKTEST_CONCURRENCY == 1
    assert "council-backtest/council-backtest" in up.served_deployments()

    # weekly training: Saturdays, the same in both places
    assert trainer["name"] == served.TRAINING == "training"
    training_flow: Flow[Any, Any] = load_flow_from_entrypoint(str(REPO / trainer["entrypoint"]))
    assert training_flow.name == "training"
    served_training = served.training_deployment()
    assert served_training is not None  # the ml extra is installed by `make install`
    assert served_training.entrypoint == "flows.training.training"
    (training_schedule,) = trainer["schedules"]
    (served_training_schedule,) = served_training.schedules or []
    assert training_schedule["cron"] == served.TRAINING_CRON
    assert served_training_schedule.schedule.cron == training_schedule["cron"]  # type: ignore[union-attr]
    assert served_training_schedule.schedule.timezone == training_schedule["timezone"]  # type: ignore[union-attr]
    assert trainer["concurrency_limit"] == served_training.concurrency_limit == 1

    # the pattern scan and the suggestion flow: on request only, the same in both places
    served_scan, served_suggest = served.on_request_deployments()
    for declared, deployment, flow_name in (
        (scan, served_scan, "pattern-scan"),
        (suggest, served_suggest, "suggestion"),
    ):
        loaded: Flow[Any, Any] = load_flow_from_entrypoint(str(REPO / declared["entrypoint"]))
        assert loaded.name == flow_name == declared["name"] == deployment.name
        assert declared["schedules"] == []
        assert not deployment.schedules
        assert declared["concurrency_limit"] == deployment.concurrency_limit
    assert {f"{d['name']}/{d['name']}" for d in (scan, suggest)} <= set(up.served_deployments())

    # sentiment: every quarter hour in New York market hours, the same in both places
    assert sentiment["name"] == served.SENTIMENT == "sentiment-analysis"
    sentiment_flow: Flow[Any, Any] = load_flow_from_entrypoint(str(REPO / sentiment["entrypoint"]))
    assert sentiment_flow.name == "sentiment-analysis"
    served_sentiment = served.sentiment_deployment()
    assert served_sentiment.entrypoint == "flows.sentiment.sentiment_analysis"
    (sentiment_schedule,) = sentiment["schedules"]
    (served_sentiment_schedule,) = served_sentiment.schedules or []
    assert sentiment_schedule["cron"] == served.SENTIMENT_CRON == "*/15 9-16 * * 1-5"
    assert sentiment_schedule["timezone"] == served.SENTIMENT_TIMEZONE == "America/New_York"
    assert served_sentiment_schedule.schedule.cron == sentiment_schedule["cron"]  # type: ignore[union-attr]
    assert served_sentiment_schedule.schedule.timezone == sentiment_schedule["timezone"]  # type: ignore[union-attr]
    assert sentiment["concurrency_limit"] == served_sentiment.concurrency_limit == 1
    assert "sentiment-analysis/sentiment-analysis" in up.served_deployments()
