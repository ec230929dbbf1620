"""The anonymised council: no prompt names a real symbol or shows a real price level, and
what it decides is stored under the real symbols at real prices.

The flow runs under a real (temporary) Prefect server on SQLite and Postgres, with the
offline analyst, which reads only its prompts: it pitches aliases at aliased prices, and
the rows must come out real.
"""

from __future__ import annotations

import asyncio
import json
import re
from datetime import date
from decimal import Decimal
from typing import Any

from sqlalchemy import Engine, select

from db.engine import make_session_factory
from flows.weekly_council import weekly_council
from models.council import CouncilDecision, CouncilRun, Pitch, ResearchReport
from models.ops import LLMCall
from tasks.council.anonymise import aliases_for
from tasks.market_snapshot import build_snapshot

AS_OF = date(2019, 6, 7)
UNIVERSE = ["AAPL", "JPM", "KO", "PFE", "WMT", "XOM", "INTC", "MSFT"]


def _sit(**kwargs: Any) -> Any:
    async def call() -> Any:
        return await weekly_council(
            as_of=AS_OF, universe=UNIVERSE, approval="auto", execute=False, return_state=True,
            **kwargs,
        )  # fmt: skip

    state = asyncio.run(call())
    assert state.is_completed(), state.message
    return state.result()


def test_aliases_are_stable_distinct_and_never_a_real_symbol() -> None:
    first, again = aliases_for(UNIVERSE), aliases_for(reversed(UNIVERSE))
    assert first == again  # the same in every sitting, whatever the order asked
    aliases = list(first.alias_of.values())
    assert len(set(aliases)) == len(UNIVERSE)
    assert not set(aliases) & set(UNIVERSE)
    assert all(0.1 <= f < 10 for f in first.factor.values())
    assert aliases_for(UNIVERSE, seed="other").alias_of != first.alias_of


def test_an_aliased_record_comes_back_real() -> None:
    aliases = aliases_for(UNIVERSE)
    alias, factor = aliases.alias_of["KO"], aliases.factor["KO"]
    pitch = {
        "symbol": alias,
        "side": "buy",
        "entry_price": str(round(50 * factor, 4)),
        "take_profit": str(round(55 * factor, 4)),
        "stop_loss": None,
        "thesis": f"{alias} is up 5% over 20 days; {aliases.alias_of['PFE']} is not",
    }
    real = aliases.record(pitch)
    assert real["symbol"] == "KO"
    assert abs(Decimal(real["entry_price"]) - 50) < Decimal("0.001")
    assert abs(Decimal(real["take_profit"]) - 55) < Decimal("0.001")
    assert real["stop_loss"] is None
    assert real["thesis"] == "KO is up 5% over 20 days; PFE is not"


def test_the_anonymised_prompts_name_no_real_symbol_and_show_no_real_price(
    flow_db: Engine,
) -> None:
    summary = _sit(anonymise=True)
    run_id = summary["council_run_id"]
    with make_session_factory(flow_db)() as session:
        run = session.get(CouncilRun, run_id)
        assert run is not None
        assert run.params is not None
        assert run.params["anonymised"] is True
        snapshot = build_snapshot(session, UNIVERSE, run.as_of)
        prompts = json.dumps(
            session.scalars(select(LLMCall.messages).where(LLMCall.run_id == run_id)).all()
        )
        assert len(prompts) > 10_000  # research, pitches, reviews and the chairman's ranking
        for symbol in UNIVERSE:
            assert not re.search(rf"\b{symbol}\b", prompts), symbol
        for m in snapshot.symbols:  # the real closes, as a prompt would print them
            assert f"{m.close}" not in prompts, (m.symbol, m.close)
        aliases = aliases_for(UNIVERSE)
        assert all(a in prompts for a in aliases.alias_of.values())

        pitches = session.scalars(select(Pitch).where(Pitch.run_id == run_id)).all()
        decisions = session.scalars(
            select(CouncilDecision).where(CouncilDecision.run_id == run_id)
        ).all()
        notes = session.scalars(select(ResearchReport).where(ResearchReport.run_id == run_id)).all()
        closes = {m.symbol: Decimal(str(m.close)) for m in snapshot.symbols}
        assert pitches
        assert decisions
        for pitch in pitches:  # real symbols, prices at the real level
            assert pitch.symbol in UNIVERSE
            assert pitch.entry_price is not None
            assert abs(pitch.entry_price / closes[pitch.symbol] - 1) < Decimal("0.001")
            assert not any(a in pitch.thesis for a in aliases.alias_of.values())
        assert {d.symbol for d in decisions} <= set(UNIVERSE)
        assert notes
        for note in notes:
            assert note.symbol in UNIVERSE
            assert not any(a in note.summary for a in aliases.alias_of.values())


def test_anonymised_and_plain_sittings_of_one_week_are_cached_apart(flow_db: Engine) -> None:
    plain = _sit()
    anonymised = _sit(anonymise=True)
    again = _sit(anonymise=True)
    with make_session_factory(flow_db)() as session:

        def hits(run_id: int) -> list[bool]:
            return list(session.scalars(select(LLMCall.cache_hit).where(LLMCall.run_id == run_id)))

        assert not any(hits(anonymised["council_run_id"]))  # its prompts differ from the plain
        assert all(hits(again["council_run_id"]))
        assert hits(plain["council_run_id"])
