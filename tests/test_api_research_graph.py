"""The dashboard's seed reads of research (a job's results, the knowledge graph, the data
package) and people's verdicts on reports: on a week the offline council really sat,
and on council rows stored directly (tests/council_factories.py) for the exact shapes."""

from __future__ import annotations

import csv
from collections.abc import Iterator
from datetime import UTC, date, datetime
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import func, select, update
from sqlalchemy.orm import Session

from db.engine import unit_of_work
from models.base import utcnow
from models.council import CouncilRun, ResearchReport, ResearchVerdict
from models.enums import JobType, Role, RunStatus
from models.market import Instrument
from models.ops import AuditEvent, Job
from tasks.import_instruments import import_instrument_file
from tasks.market_snapshot import build_snapshot
from tests.api_support import Api, api_after_a_council
from tests.conftest import SAMPLE_DATA
from tests.council_factories import make_call, make_report, make_run

AS_OF = date(2019, 6, 3)
UNIVERSE = ["AAPL", "JPM", "MSFT", "NVDA", "XOM"]
SECTORS_FILE = SAMPLE_DATA / "sp500_sectors_sample.csv"
STANCES = {"bullish_on", "bearish_on", "neutral_on", "notes_on"}
VERIFY = "/api/research/verify"


@pytest.fixture
def sat_api(
    api_db_url: str, prefect_harness: None, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> Iterator[Api]:
    """The API after the offline council sat on AS_OF, with the sample's sectors imported
    first (so the snapshot has sectors and the analysts' packs have sector views)."""
    from db.engine import make_engine, make_session_factory

    engine = make_engine(api_db_url)
    with unit_of_work(make_session_factory(engine)) as session:
        import_instrument_file(session, SECTORS_FILE)
    engine.dispose()
    yield from api_after_a_council(api_db_url, monkeypatch, tmp_path, AS_OF, UNIVERSE)


def test_a_sitting_reads_by_its_job_as_a_graph_and_as_its_data_package(sat_api: Api) -> None:
    api = sat_api
    latest = api.get("/api/research/latest").json()
    reports = latest["reports"]
    assert {r["symbol"] for r in reports} == set(UNIVERSE)
    [job] = api.get("/api/jobs", params={"type": "council"}).json()["items"]
    by_job = api.get(f"/api/research/{job['id']}")
    assert by_job.status_code == 200, by_job.text
    assert (by_job.json()["job"]["id"], by_job.json()["job"]["status"]) == (job["id"], "completed")
    assert by_job.json()["research"] == latest

    graph = api.get("/api/graphs/latest").json()
    assert (graph["council_run_id"], graph["as_of"]) == (latest["run_id"], latest["as_of"])
    nodes = {n["id"] for n in graph["nodes"]}
    assert all(e["source"] in nodes and e["target"] in nodes for e in graph["edges"])
    notes = {
        e["report_id"]: e
        for e in graph["edges"]
        if e["relation"] in STANCES and e["target"].startswith("symbol:")
    }
    for report in reports:
        note = notes[report["id"]]
        findings = report["findings"]
        assert (note["source"], note["target"], note["relation"]) == (
            f"analyst:{report['analyst']}",
            f"symbol:{report['symbol']}",
            f"{findings['stance']}_on",
        )
        assert (note["llm_call_id"], note["confidence"]) == (
            report["llm_call_id"],
            float(findings["confidence"]),  # stored as the decimal's text
        )
        risks = [
            e["target"]
            for e in graph["edges"]
            if e["relation"] == "has_risk" and e["report_id"] == report["id"]
        ]
        assert risks == [f"risk:{' '.join(r.split()).casefold()}" for r in findings["risks"]]
    with SECTORS_FILE.open() as f:
        sector_of = {row["symbol"]: row["sector"] for row in csv.DictReader(f)}
    in_sector = [(e["source"], e["target"]) for e in graph["edges"] if e["relation"] == "in_sector"]
    assert in_sector == [(f"symbol:{s}", f"sector:{sector_of[s]}") for s in sorted(UNIVERSE)]
    views = [
        e
        for e in graph["edges"]
        if e["source"].startswith("analyst:") and e["target"].startswith("sector:")
    ]
    assert views, "the offline analysts give sector views"
    research_calls = {r["llm_call_id"] for r in reports}
    assert all(v["report_id"] is None and v["llm_call_id"] in research_calls for v in views)

    package = api.get("/api/data-package/latest").json()
    assert package["council_run_id"] == latest["run_id"]
    assert package["data_hash"] == package["data_hash_recomputed"] == latest["data_hash"]
    assert package["data_hash_matches"] is True
    assert (package["universe"], package["missing"], package["sentiment"]) == (UNIVERSE, [], None)
    assert "correlation" not in package
    assert package["research"] == reports
    params = {"as_of": str(AS_OF), "symbols": ",".join(UNIVERSE)}
    snapshot = api.get("/api/market/snapshot", params=params).json()
    assert snapshot["data_hash"] == package["data_hash"]
    assert (package["symbols"], package["sectors"]) == (snapshot["symbols"], snapshot["sectors"])
    assert {s["sector"] for s in package["sectors"]} == {sector_of[s] for s in UNIVERSE}

    first = reports[0]
    judged = api.post(
        VERIFY, json={"report_id": first["id"], "verdict": "verified", "note": "figures agree"}
    )
    assert judged.status_code == 200, judged.text
    assert judged.json()["verified"] is True  # the automatic check, as before
    assert judged.json()["verdict"]["verdict"] == "verified"
    shown = api.get(f"/api/research/report/{first['id']}").json()["verdicts"]
    assert [(v["verdict"], v["note"], v["actor"]) for v in shown] == [
        ("verified", "figures agree", "trader-user")
    ]


# Below: council rows stored directly (tests/council_factories.py), on the plain `api`.


def test_a_job_answers_with_its_runs_research_and_other_jobs_are_404(api: Api) -> None:
    with unit_of_work(api.sessions) as session:
        research = _job(session, JobType.RESEARCH, stop_after="research", as_of=str(AS_OF))
        run = make_run(session)
        run.job_id = research.id
        note = make_report(session, run)
        waiting = _job(session, JobType.COUNCIL)
        backtest = _job(session, JobType.BACKTEST)
        ids = research.id, run.id, note.id, waiting.id, backtest.id

    research_id, run_id, note_id, waiting_id, backtest_id = ids
    answer = api.get(f"/api/research/{research_id}")
    assert answer.status_code == 200, answer.text
    body = answer.json()
    assert (body["job"]["id"], body["job"]["type"], body["job"]["status"]) == (
        research_id,
        "research",
        "running",
    )
    assert (body["research"]["run_id"], body["research"]["status"]) == (run_id, "completed")
    assert [r["id"] for r in body["research"]["reports"]] == [note_id]
    pending = api.get(f"/api/research/{waiting_id}").json()
    assert (pending["job"]["type"], pending["research"]) == ("council", None)

    other = api.get(f"/api/research/{backtest_id}")
    assert other.status_code == 404
    assert other.json()["detail"] == (
        f"job {backtest_id} is a backtest job, not a research or council job"
    )
    unknown = api.get("/api/research/999999")
    assert (unknown.status_code, unknown.json()["detail"]) == (404, "no job 999999")
    for bad in ("0", "-1", "9007199254740993"):
        refused = api.get(f"/api/research/{bad}")
        assert refused.status_code == 422, bad
        assert [e["field"] for e in refused.json()["errors"]] == ["path.job_id"], bad
    # the fixed paths beside it are not taken for a job id
    assert api.get("/api/research/status").json()["id"] == research_id
    assert api.get("/api/research/current").json()["run_id"] == run_id
    assert api.get("/api/research/latest").json()["run_id"] == run_id
    assert api.get("/api/research/history").json()["items"][0]["runs"][0]["run_id"] == run_id
    assert api.get("/api/research/nothing").status_code == 422  # not a route, not a job id


def test_the_graph_draws_each_note_its_sectors_risks_and_the_packs_sector_views(api: Api) -> None:
    for path in ("/api/graphs/latest", "/api/data-package/latest"):
        before = api.get(path)
        assert before.status_code == 404, path
        assert before.json()["detail"] == "no completed council run has research yet"
    with unit_of_work(api.sessions) as session:
        import_instrument_file(session, SECTORS_FILE)
        session.execute(update(Instrument).where(Instrument.symbol == "JPM").values(sector=None))
        run = make_run(session, universe=["AAPL", "JPM", "MSFT", "XOM"])
        value = make_call(session, run, member="analyst-value")
        value.parsed_output = {
            "regime": "mixed",
            "sector_views": [
                {"sector": "Energy", "stance": "bearish", "reason": "mean 20d -4%"},
                {"sector": "Information Technology", "stance": "bullish", "reason": "breadth"},
            ],
        }
        macro = make_call(session, run, member="analyst-macro")
        macro.parsed_output = {"sector_views": "none today"}  # not views: adds no edge
        aapl = make_report(session, run, symbol="AAPL", call=value)
        xom = _noted(make_report(session, run, symbol="XOM", call=value), "bearish", 0.8)
        xom.findings = {**xom.findings, "risks": ["Earnings  in 8 WEEKS", "oil price"]}
        msft = _noted(
            make_report(session, run, symbol="MSFT", analyst="analyst-macro", call=macro),
            "sideways",
            "high",
        )
        msft.findings = {**msft.findings, "risks": []}
        jpm = _noted(make_report(session, run, symbol="JPM"), "neutral", 0.5)
        jpm.findings = {**jpm.findings, "risks": []}
        failed = make_run(session, as_of=datetime(2019, 6, 11, tzinfo=UTC), status=RunStatus.FAILED)
        make_report(session, failed, symbol="NVDA")
        ids = run.id, value.id, macro.id, aapl.id, xom.id, msft.id, jpm.id

    run_id, value_id, macro_id, aapl_id, xom_id, msft_id, jpm_id = ids
    answer = api.get("/api/graphs/latest")
    assert answer.status_code == 200, answer.text
    graph = answer.json()
    assert (graph["council_run_id"], graph["as_of"]) == (run_id, "2019-06-04T00:00:00Z")
    assert [(n["id"], n["kind"], n["label"]) for n in graph["nodes"]] == [
        ("analyst:analyst-macro", "analyst", "analyst-macro"),
        ("analyst:analyst-value", "analyst", "analyst-value"),
        ("symbol:AAPL", "symbol", "AAPL"),
        ("symbol:JPM", "symbol", "JPM"),
        ("symbol:MSFT", "symbol", "MSFT"),
        ("symbol:XOM", "symbol", "XOM"),
        ("sector:Energy", "sector", "Energy"),
        ("sector:Information Technology", "sector", "Information Technology"),
        ("risk:earnings in 8 weeks", "risk", "earnings in 8 weeks"),
        ("risk:oil price", "risk", "oil price"),
    ]
    value_, macro_ = "analyst:analyst-value", "analyst:analyst-macro"
    earnings, oil = "risk:earnings in 8 weeks", "risk:oil price"
    it, energy = "sector:Information Technology", "sector:Energy"
    assert [
        (e["source"], e["target"], e["relation"], e["report_id"], e["llm_call_id"], e["confidence"])
        for e in graph["edges"]
    ] == [
        (value_, "symbol:AAPL", "bullish_on", aapl_id, value_id, 0.6),
        ("symbol:AAPL", earnings, "has_risk", aapl_id, value_id, None),
        (value_, "symbol:XOM", "bearish_on", xom_id, value_id, 0.8),
        ("symbol:XOM", earnings, "has_risk", xom_id, value_id, None),  # one risk, two notes
        ("symbol:XOM", oil, "has_risk", xom_id, value_id, None),
        (macro_, "symbol:MSFT", "notes_on", msft_id, macro_id, None),  # no known stance
        (value_, "symbol:JPM", "neutral_on", jpm_id, None, 0.5),
        ("symbol:AAPL", it, "in_sector", None, None, None),
        ("symbol:MSFT", it, "in_sector", None, None, None),  # JPM has no sector: no edge
        ("symbol:XOM", energy, "in_sector", None, None, None),
        (value_, energy, "bearish_on", None, value_id, None),
        (value_, it, "bullish_on", None, value_id, None),
    ]


def test_the_data_package_is_the_runs_snapshot_rebuilt_and_says_if_the_bars_changed(
    api: Api,
) -> None:
    universe = ["AAPL", "MSFT", "XOM"]
    with api.sessions() as session:
        snapshot = build_snapshot(session, universe, AS_OF)
    with unit_of_work(api.sessions) as session:
        run = make_run(session, universe=universe, data_hash=snapshot.data_hash)
        notes = [make_report(session, run, symbol=s).id for s in ("MSFT", "AAPL")]
        run_id = run.id

    package = api.get("/api/data-package/latest").json()
    assert (package["council_run_id"], package["status"]) == (run_id, "completed")
    assert (package["as_of"], package["knowledge_cutoff"]) == (
        "2019-06-04T00:00:00Z",
        "2019-06-03T00:00:00Z",
    )
    assert package["data_hash"] == package["data_hash_recomputed"] == snapshot.data_hash
    assert package["data_hash_matches"] is True
    assert package["symbols"] == [m.model_dump(mode="json") for m in snapshot.symbols]
    assert package["bars_used"] == snapshot.bars_used
    assert [r["id"] for r in package["research"]] == notes
    assert package["sentiment"] is None

    with unit_of_work(api.sessions) as session:
        moved_hash = update(CouncilRun).where(CouncilRun.id == run_id).values(data_hash="0" * 64)
        session.execute(moved_hash)
    moved = api.get("/api/data-package/latest").json()
    assert (moved["data_hash"], moved["data_hash_recomputed"]) == ("0" * 64, snapshot.data_hash)
    assert moved["data_hash_matches"] is False

    with unit_of_work(api.sessions) as session:
        session.execute(update(CouncilRun).where(CouncilRun.id == run_id).values(params=None))
    unrecorded = api.get("/api/data-package/latest")
    assert unrecorded.status_code == 404
    assert unrecorded.json()["detail"] == (
        f"council run {run_id} recorded no universe: its data package cannot be rebuilt"
    )


def test_a_verdict_is_recorded_with_who_and_when_audited_and_shown_on_its_report(
    api: Api,
) -> None:
    with unit_of_work(api.sessions) as session:
        report_id = make_report(session, make_run(session)).id
    written = _written(api)

    checked = api.post(VERIFY, json={"report_id": report_id}, role=Role.VIEWER)
    assert checked.status_code == 200, checked.text
    assert checked.json()["verdict"] is None  # a check alone records nothing
    judged = {"report_id": report_id, "verdict": "verified"}
    viewer = api.post(VERIFY, json=judged, role=Role.VIEWER)
    assert viewer.status_code == 403
    assert viewer.json()["detail"] == (
        "recording a verdict needs the trader role; the token has viewer"
    )
    anonymous = api.post(VERIFY, json=judged, role=None)
    assert anonymous.status_code == 401
    unknown = api.post(VERIFY, json={"report_id": 999999, "verdict": "disputed"})
    assert (unknown.status_code, unknown.json()["detail"]) == (404, "no research report 999999")
    for body, field in [
        ({"report_id": report_id, "verdict": "maybe"}, "body.verdict"),
        ({"report_id": report_id, "verdict": "verified", "note": "x" * 2001}, "body.note"),
        ({"report_id": report_id, "verdict": "verified", "note": "nul \u0000"}, "body.note"),
        ({"report_id": report_id, "note": "a note alone"}, "body.note"),
        ({"report_id": report_id, "verdict": "verified", "by": "me"}, "body.by"),
        ({"verdict": "verified"}, "body.report_id"),
    ]:
        refused = api.post(VERIFY, json=body)
        assert refused.status_code == 422, body
        assert [e["field"] for e in refused.json()["errors"]] == [field], body
    assert _written(api) == written  # every refusal wrote nothing

    started = utcnow()
    disputed = {"report_id": report_id, "verdict": "disputed", "note": "5d return is MSFT's"}
    first = api.post(VERIFY, json=disputed, headers={"Idempotency-Key": "verdict-1"})
    assert first.status_code == 200, first.text
    verdict = first.json()["verdict"]
    assert (verdict["report_id"], verdict["verdict"], verdict["note"], verdict["actor"]) == (
        report_id,
        "disputed",
        "5d return is MSFT's",
        "trader-user",
    )
    assert started <= datetime.fromisoformat(verdict["created_at"]) <= utcnow()
    retried = api.post(VERIFY, json=disputed, headers={"Idempotency-Key": "verdict-1"})
    assert retried.headers["idempotency-replayed"] == "true"
    assert retried.json()["verdict"]["id"] == verdict["id"]
    second = api.post(VERIFY, json=judged, role=Role.ADMIN)
    assert second.status_code == 200, second.text
    assert _written(api) == (written[0] + 2, written[1] + 2)  # the retry acted once

    shown = api.get(f"/api/research/report/{report_id}").json()["verdicts"]
    assert [(v["id"], v["verdict"], v["note"], v["actor"]) for v in shown] == [
        (verdict["id"], "disputed", "5d return is MSFT's", "trader-user"),
        (second.json()["verdict"]["id"], "verified", None, "admin-user"),
    ]
    with api.sessions() as session:
        rows = session.scalars(select(ResearchVerdict).order_by(ResearchVerdict.id)).all()
        assert [r.token_id for r in rows] == [api.token_ids[Role.TRADER], api.token_ids[Role.ADMIN]]
        events = session.scalars(
            select(AuditEvent)
            .where(AuditEvent.event == "research.verdict_recorded")
            .order_by(AuditEvent.id)
        ).all()
        assert [(e.actor, e.role, e.token_id) for e in events] == [
            ("trader-user", "trader", api.token_ids[Role.TRADER]),
            ("admin-user", "admin", api.token_ids[Role.ADMIN]),
        ]
        assert (events[0].entity_type, events[0].entity_id) == ("research_report", str(report_id))
        assert events[0].payload == {
            "after": {"verdict_id": verdict["id"], "verdict": "disputed", "note": disputed["note"]}
        }
        assert events[0].request_id


def _job(session: Session, kind: JobType, **params: Any) -> Job:
    job = Job(type=str(kind), status=RunStatus.RUNNING, params=params)
    session.add(job)
    session.flush()
    return job


def _noted(report: ResearchReport, stance: str, confidence: object) -> ResearchReport:
    report.findings = {**report.findings, "stance": stance, "confidence": confidence}
    return report


def _written(api: Api) -> tuple[int, int]:
    """(verdicts, audit events) stored now."""
    with api.sessions() as session:
        verdicts = session.scalar(select(func.count()).select_from(ResearchVerdict)) or 0
        events = session.scalar(select(func.count()).select_from(AuditEvent)) or 0
    return verdicts, events
