"""The council on the whole shared universe (482 symbols) through models of 8 k, 32 k and
128 k token windows: every request fits its window, the council reaches decisions, and the
calls and tokens of each stage are on record.

The models are the loopback fake OpenAI server (litellm's real client) described by a
models file, answering with the offline analyst's answer to each prompt; the fake also
checks every request against the window the file gives, with our token counter, and
that the answer fits the request's `max_tokens`, as a real model's would have to.
Only the weeks before the council's day are imported: the snapshot needs 60 bars.
"""

from __future__ import annotations

import asyncio
import gzip
import json
from collections import defaultdict, deque
from collections.abc import Iterator
from datetime import date
from pathlib import Path
from typing import Any

import litellm
import pytest
from sqlalchemy import Engine, func, select

from db.engine import make_engine, make_session_factory, unit_of_work
from db.queries.llm_calls import run_costs
from flows.weekly_council import weekly_council
from models.council import CouncilDecision, CouncilRun
from models.enums import LLMCallStatus, RunStatus
from models.ops import AuditEvent, LLMCall
from services.llm.context import extract_context
from services.llm.offline import answer_council_prompt
from services.settings import get_settings
from tasks.import_bars import import_bar_file
from tasks.import_instruments import import_instrument_file
from tests.conftest import SHARED_DATA
from tests.fake_openai import FakeOpenAI, Responder, fake_openai

AS_OF = date(2019, 6, 3)
FIRST_DAY = "2019-01-02"  # ~100 trading days before AS_OF: the snapshot reads 60


@pytest.fixture(scope="session")
def shared_window_file(shared_daily_file: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The shared S&P file cut to the months before the council's day, plus the last bars
    of the symbols that stopped trading earlier: all 482 symbols, fast to import."""
    out = tmp_path_factory.mktemp("shared") / "sp500_2019h1.csv"
    recent: dict[str, list[str]] = {}
    earlier: dict[str, deque[str]] = defaultdict(lambda: deque(maxlen=60))
    with gzip.open(shared_daily_file, "rt") as src:
        header = src.readline()
        for line in src:
            day, symbol = line[:10], line[11 : line.index(",", 11)]
            if FIRST_DAY <= day <= AS_OF.isoformat():
                recent.setdefault(symbol, []).append(line)
            elif day < FIRST_DAY:
                earlier[symbol].append(line)
    with out.open("w") as dst:
        dst.write(header)
        for lines in recent.values():
            dst.writelines(lines)
        for symbol, tail in earlier.items():
            if symbol not in recent:
                dst.writelines(tail)
    return out


@pytest.fixture
def universe_db(
    migrated_db_url: str,
    shared_window_file: Path,
    monkeypatch: pytest.MonkeyPatch,
    prefect_harness: None,
) -> Iterator[Engine]:
    engine = make_engine(migrated_db_url)
    with unit_of_work(make_session_factory(engine)) as session:
        import_bar_file(session, shared_window_file)
        import_instrument_file(session, SHARED_DATA / "sp500_sectors.csv")
    monkeypatch.setenv("DATABASE_URL", migrated_db_url)
    get_settings.cache_clear()
    yield engine
    get_settings.cache_clear()
    engine.dispose()


class WindowedModel:
    """The fake's responder: checks each request against `window`, answers as the offline
    analyst, and notes what it saw."""

    def __init__(self, window: int) -> None:
        self.window = window
        self.problems: list[str] = []
        self.seen: list[tuple[str, int, int]] = []  # (stage, prompt tokens, answer tokens)

    def __call__(self, body: dict[str, Any]) -> str:
        messages = body["messages"]
        prompt = litellm.token_counter(model=body["model"], messages=messages)
        limit = int(body["max_tokens"])
        answer = answer_council_prompt("offline/analyst", messages)
        answer_tokens = litellm.token_counter(model=body["model"], text=answer)
        stage = str((extract_context(messages[-1]["content"]) or {}).get("stage", "repair"))
        self.seen.append((stage, prompt, answer_tokens))
        if prompt + limit > self.window:
            self.problems.append(f"{stage}: {prompt} + {limit} > {self.window}")
        if answer_tokens > limit:
            self.problems.append(f"{stage}: answer of {answer_tokens} > max_tokens {limit}")
        return answer


def _models_file(tmp_path: Path, server: FakeOpenAI, window: int) -> Path:
    spec = {
        "models": [
            {
                "name": "council",
                "model": f"openai/council-{window // 1024}k",
                "api_base": server.base_url,
                "input_window": window,
                "output_limit": min(4096, window // 2),
                "input_cost_per_token": "0.00000015",  # gpt-4o-mini's prices
                "output_cost_per_token": "0.0000006",
                "concurrency": 8,
            }
        ],
        "roster": {"analyst": "council", "pm": "council", "chairman": "council"},
    }
    path = tmp_path / "models.json"
    path.write_text(json.dumps(spec))
    return path


@pytest.mark.parametrize("window", [8192, 32768, 131072], ids=["8k", "32k", "128k"])
def test_the_whole_universe_fits_every_window_and_the_council_decides(
    universe_db: Engine, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, window: int
) -> None:
    model = WindowedModel(window)
    with fake_openai(default=Responder(model)) as server:
        monkeypatch.setenv("LLM_MODELS_FILE", str(_models_file(tmp_path, server, window)))
        get_settings.cache_clear()
        state = asyncio.run(_sit())
    assert state.is_completed(), state.message
    assert model.problems == []
    with make_session_factory(universe_db)() as session:
        run = session.scalars(select(CouncilRun)).one()
        assert run.status is RunStatus.COMPLETED
        assert run.params is not None
        assert len(run.params["universe"]) == 482
        screen = session.scalars(
            select(AuditEvent).where(AuditEvent.event == "research.screen")
        ).one()
        stale = {
            s for s, why in screen.payload["excluded"].items() if why.startswith("no bar since")
        }
        assert {"TWX", "ESRX", "AET"} <= stale  # gone before the council's day: never studied
        decisions = session.scalar(select(func.count()).select_from(CouncilDecision))
        assert decisions
        assert decisions > 0
        costs = run_costs(session, run.id)
        statuses = session.scalars(select(LLMCall.status).where(LLMCall.run_id == run.id)).all()
        assert set(statuses) == {LLMCallStatus.OK}  # no member abstained, none was refused
    by_stage: dict[str, list[int]] = {}
    for line in costs:
        calls, prompt, answer = by_stage.setdefault(line.stage, [0, 0, 0])
        by_stage[line.stage] = [
            calls + line.calls,
            prompt + line.prompt_tokens,
            answer + line.completion_tokens,
        ]
    assert set(by_stage) == {"research", "pitch", "review", "chairman"}
    research_calls = by_stage["research"][0]
    # Two analysts; a small window needs shards and a synthesis each, the largest one call.
    assert research_calls == 2 if window == 131072 else research_calls > 2
    assert all(prompt > 0 for _, prompt, _ in by_stage.values())
    assert max(p for _, p, _ in model.seen) < window
    print(
        f"\n{window // 1024}k window: "
        + ", ".join(
            f"{stage} {calls} calls {prompt:,}+{answer:,} tokens"
            for stage, (calls, prompt, answer) in by_stage.items()
        )
    )


async def _sit() -> Any:
    return await weekly_council(as_of=AS_OF, approval="auto", execute=False, return_state=True)
