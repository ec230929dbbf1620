"""The sentiment_analysis flow and job, on both databases: live and backfill runs, point in
time at every step, reruns that add nothing, the fallback to the lexicon when the model
directory is missing, and the job's validation and progress."""

from __future__ import annotations

import time
from collections.abc import Iterator
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import func, select
from sqlalchemy.orm import Session, sessionmaker

from db.engine import make_engine, make_session_factory
from flows.sentiment import backfill_instants, sentiment_analysis
from models.errors import InvalidInputError
from models.ops import Job
from models.sentiment import NewsScore, SymbolSentimentRow
from services.sentiment.lexicon import LexiconScorer
from services.settings import get_settings
from tests.api_support import Api, api_settings, running_api
from tests.news_factories import add_news

LEXICON = LexiconScorer().name
DAY = datetime(2019, 6, 3, tzinfo=UTC)


@pytest.fixture
def db(
    sample_db: str, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> Iterator[sessionmaker[Session]]:
    monkeypatch.setenv("MODEL_DIR", str(tmp_path / "models"))
    get_settings.cache_clear()
    engine = make_engine(sample_db)
    yield make_session_factory(engine)
    engine.dispose()
    get_settings.cache_clear()


def _rows(db: sessionmaker[Session]) -> list[SymbolSentimentRow]:
    with db() as session:
        rows = list(session.scalars(select(SymbolSentimentRow).order_by(
            SymbolSentimentRow.as_of, SymbolSentimentRow.symbol)))  # fmt: skip
        session.expunge_all()
        return rows


def _news(db: sessionmaker[Session]) -> None:
    add_news(db, "1", "Apple shares soar after record earnings", ["AAPL"],
             DAY + timedelta(hours=15), score=False)  # fmt: skip
    add_news(db, "2", "Microsoft stock plunges on lawsuit", ["MSFT"],
             DAY + timedelta(days=1, hours=14), score=False)  # fmt: skip


def test_a_backfill_scores_the_news_and_stores_each_step_point_in_time(
    db: sessionmaker[Session],
) -> None:
    _news(db)
    summary = sentiment_analysis(start=date(2019, 6, 2), end=date(2019, 6, 5))
    assert summary["mode"] == "backfill"
    assert (summary["scorer"], summary["runtime"], summary["scorer_note"]) == (
        LEXICON,
        "lexicon",
        None,
    )
    assert summary["scored"] == 2
    assert summary["steps"] == 4
    rows = _rows(db)
    got = [(r.as_of.date().isoformat(), r.symbol, r.count) for r in rows]
    # steps at the end of each day: 06-03 00:00 knows nothing yet; MSFT's item is known 06-04
    assert got == [
        ("2019-06-04", "AAPL", 1),
        ("2019-06-05", "AAPL", 1),
        ("2019-06-05", "MSFT", 1),
        ("2019-06-06", "AAPL", 1),
        ("2019-06-06", "MSFT", 1),
    ]
    assert {r.scorer for r in rows} == {LEXICON}
    aapl = [r.score for r in rows if r.symbol == "AAPL"]
    assert aapl[0] > aapl[1] > aapl[2] > 0 or aapl[0] == aapl[1] == aapl[2]  # one item: same score
    msft = next(r for r in rows if r.symbol == "MSFT")
    assert msft.score < 0

    again = sentiment_analysis(start=date(2019, 6, 2), end=date(2019, 6, 5))
    assert (again["scored"], again["stored"]) == (0, 0)  # a rerun adds nothing
    assert len(_rows(db)) == 5


def test_a_live_run_stores_the_sentiment_as_of_now(db: sessionmaker[Session]) -> None:
    now = datetime.now(UTC)
    add_news(db, "1", "Exxon surges to record", ["XOM"], now - timedelta(hours=2), score=False)
    add_news(db, "2", "Old news", ["XOM"], now - timedelta(days=30), score=False)
    summary = sentiment_analysis()
    assert summary["mode"] == "live"
    assert summary["scored"] == 1
    (row,) = _rows(db)
    assert (row.symbol, row.count, row.scorer) == ("XOM", 1, LEXICON)
    assert abs((row.as_of - now).total_seconds()) < 120


def test_a_missing_model_directory_falls_back_to_the_lexicon_and_says_so(
    db: sessionmaker[Session], monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    missing = tmp_path / "finbert-tone"
    monkeypatch.setenv("SENTIMENT_MODEL_DIR", str(missing))
    get_settings.cache_clear()
    _news(db)
    summary = sentiment_analysis(start=date(2019, 6, 3), end=date(2019, 6, 3))
    assert summary["runtime"] == "lexicon"
    assert summary["scorer"] == LEXICON
    assert str(missing) in summary["scorer_note"]
    assert "\n" not in summary["scorer_note"]
    with db() as session:
        assert set(session.scalars(select(NewsScore.scorer))) == {LEXICON}
    assert {r.scorer for r in _rows(db)} == {LEXICON}


def test_with_a_local_model_the_flow_scores_with_its_onnx_export_and_rows_name_it(
    db: sessionmaker[Session], monkeypatch: pytest.MonkeyPatch, tiny_model: Path
) -> None:
    monkeypatch.setenv("SENTIMENT_MODEL_DIR", str(tiny_model))
    get_settings.cache_clear()
    _news(db)
    summary = sentiment_analysis(start=date(2019, 6, 3), end=date(2019, 6, 4))
    assert summary["runtime"] == "onnx"
    assert summary["scorer_note"] is None
    assert summary["scorer"].startswith("tiny-finbert@")
    with db() as session:
        assert set(session.scalars(select(NewsScore.scorer))) == {summary["scorer"]}
    rows = _rows(db)
    assert {r.scorer for r in rows} == {summary["scorer"]}
    by_symbol = {r.symbol: r.score for r in rows}
    assert by_symbol["AAPL"] > 0  # "soar after record earnings"
    assert by_symbol["MSFT"] < 0  # "plunges on lawsuit"


def test_backfill_steps_and_their_limits() -> None:
    steps = backfill_instants(date(2019, 6, 3), date(2019, 6, 3), 6)
    assert [s.hour for s in steps] == [6, 12, 18, 0]
    assert steps[-1] == datetime(2019, 6, 4, tzinfo=UTC)
    with pytest.raises(InvalidInputError, match="at most"):
        backfill_instants(date(2000, 1, 1), date(2019, 1, 1), 0.25)


@pytest.mark.parametrize(
    ("params", "field"),
    [
        ({"end": "2019-06-03"}, "body.sentiment.params"),  # end without start
        ({"start": "2019-06-05", "end": "2019-06-03"}, "body.sentiment.params"),
        ({"start": "2019-06-03", "step_hours": 0}, "body.sentiment.params.step_hours"),
        ({"symbols": ["AAPL", "A$"]}, "body.sentiment.params.symbols"),
        ({"nope": 1}, "body.sentiment.params.nope"),
        ({"start": "2000-01-01", "end": "2019-01-01", "step_hours": 0.25}, "body.sentiment.params"),
        ({"start": "2999-01-01"}, "body.sentiment.params"),  # after today, no end
    ],
)
def test_a_bad_sentiment_job_is_a_422_naming_the_field_and_writes_nothing(
    api: Api, params: dict[str, Any], field: str
) -> None:
    response = api.post("/api/jobs", json={"type": "sentiment", "params": params})
    assert response.status_code == 422, response.text
    fields = [e["field"] for e in response.json()["errors"]]
    assert any(f.startswith(field) for f in fields), fields
    with api.sessions() as session:
        assert session.scalar(select(func.count()).select_from(Job)) == 0


def test_a_backfill_job_runs_the_flow_and_reports_its_progress(
    api_db_url: str, prefect_harness: None, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    monkeypatch.chdir(tmp_path)
    settings = api_settings(api_db_url, jobs_log_dir=tmp_path / "jobs", log_level="WARNING")
    with running_api(settings) as api:
        _news(api.sessions)
        body = {"type": "sentiment", "params": {"start": "2019-06-02", "end": "2019-06-05"}}
        job = api.post("/api/jobs", json=body)
        assert job.status_code == 202, job.text
        deadline = time.monotonic() + 120
        state: dict[str, Any] = {}
        while time.monotonic() < deadline:
            state = api.get(f"/api/jobs/{job.json()['id']}").json()
            if state["status"] not in {"pending", "running"}:
                break
            time.sleep(0.3)
        assert state["status"] == "completed", state
        result = state["result"]
        assert (result["done"], result["total"], result["steps"]) == (4, 4, 4)
        assert result["scorer"] == LEXICON
        assert result["stored"] == 5
        history = api.get("/api/sentiment/history", params={"symbol": "AAPL"}).json()
        assert len(history["points"]) == 3


def test_aitrader_sentiment_run_backfills_and_show_reads_point_in_time(
    aitrader: Any, sample_db: str
) -> None:
    engine = make_engine(sample_db)
    try:
        _news(make_session_factory(engine))
    finally:
        engine.dispose()
    code, out = aitrader("sentiment", "run", "--start", "2019-06-02", "--end", "2019-06-05")
    assert code == 0, out
    assert f"2 items scored by {LEXICON} (lexicon), 5 figures stored over 4 step(s)" in out
    code, out = aitrader("sentiment", "show", "AAPL,MSFT", "--as-of", "2019-06-04T12:00:00")
    assert code == 0, out
    assert "as of 2019-06-04T12:00:00+00:00: 1 items" in out  # MSFT's is known at 14:00
    assert "AAPL" in out
    code, out = aitrader("sentiment", "run", "--end", "2019-06-05")
    assert code == 1
    assert "error: --start/--end: " in out
    assert "end needs start" in out
    code, out = aitrader("sentiment", "show", "--as-of", "yesterday")
    assert code == 1
    assert "not an ISO 8601 instant" in out


@pytest.mark.redis
@pytest.mark.usefixtures("redis_up")
def test_with_redis_a_backfills_steps_are_announced_on_the_job_stream(
    db: sessionmaker[Session], monkeypatch: pytest.MonkeyPatch
) -> None:
    """Production's path: the flow announces each step on `jobs:updates` itself (the
    realtime process's bus bridge carries it to `job_updates`)."""
    import asyncio

    from models.bus import JOBS_UPDATES
    from services.bus.redis_streams import RedisStreamsBus

    redis_url = "redis://127.0.0.1:6379/0"
    monkeypatch.setenv("REDIS_URL", redis_url)
    get_settings.cache_clear()
    _news(db)
    with db() as session:
        job = Job(type="sentiment", params={})
        session.add(job)
        session.commit()
        job_id = job.id

    def newest_id() -> str:
        import redis

        client = redis.Redis.from_url(redis_url, decode_responses=True)
        try:
            last: Any = client.xrevrange(JOBS_UPDATES, count=1)
            return str(last[0][0]) if last else "0-0"
        finally:
            client.close()

    async def since(start: str) -> list[dict[str, Any]]:
        bus = RedisStreamsBus(redis_url)
        try:
            got = await bus.tail(JOBS_UPDATES, last_id=start, block_ms=0, count=1000)
            return [d.message.data for d in got if d.message.data.get("id") == job_id]
        finally:
            await bus.close()

    start = newest_id()
    sentiment_analysis(start=date(2019, 6, 2), end=date(2019, 6, 5), job_id=job_id)
    steps = [m.get("done") for m in asyncio.run(since(start)) if m.get("stage") == "sentiment"]
    assert [s for s in steps if s is not None] == [1, 2, 3, 4]
