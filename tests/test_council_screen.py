"""The research screen, shard planning and prompt fitting: pure functions on a built snapshot."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from typing import Any

from models.llm_outputs import ResearchNote, ResearchPack, Stance
from models.snapshot import Correlation, MarketSnapshot, SectorMetrics, SymbolMetrics
from tasks.council.fitting import largest_fitting, snapshot_of
from tasks.council.research import keep_notes_on, plan_shards
from tasks.council.screen import Screen, ScreenRules, screen

CUTOFF = datetime(2019, 5, 31, tzinfo=UTC)


def _metrics(symbol: str, sector: str | None, **fields: Any) -> SymbolMetrics:
    base: dict[str, Any] = {
        "symbol": symbol,
        "sector": sector,
        "last_bar": CUTOFF,
        "close": 100.0,
        "ret_20d": 0.05,
        "vol_20d": 0.25,
        "dollar_volume_20d": 50e6,
    }
    return SymbolMetrics.model_validate(base | fields)


def _snapshot(rows: list[SymbolMetrics], missing: list[str] | None = None) -> MarketSnapshot:
    names = [m.symbol for m in rows]
    n = len(names)
    matrix = [[1.0 if i == j else round(0.01 * (i + j), 6) for j in range(n)] for i in range(n)]
    sectors = sorted({m.sector for m in rows if m.sector})
    return MarketSnapshot(
        as_of=CUTOFF + timedelta(days=1),
        knowledge_cutoff=CUTOFF,
        universe=sorted([*names, *(missing or [])]),
        missing=missing or [],
        symbols=rows,
        sectors=[
            SectorMetrics(sector=s, symbols=sum(m.sector == s for m in rows)) for s in sectors
        ],
        correlation=Correlation(window=20, symbols=names, matrix=matrix),
        bars_used=60 * len(rows),
        data_hash="0" * 64,
    )


def test_the_screen_leaves_out_what_cannot_be_studied_and_says_why() -> None:
    snapshot = _snapshot(
        [
            _metrics("GOOD", "Tech"),
            _metrics("GONE", "Tech", last_bar=CUTOFF - timedelta(days=200)),
            _metrics("NEW", "Tech", ret_20d=None, vol_20d=None),
            _metrics("THIN", "Tech", dollar_volume_20d=1e5),
            _metrics("WILD", "Tech", vol_20d=2.5),
        ],
        missing=["NOBARS"],
    )
    result = screen(snapshot, ScreenRules(max_symbols=10))
    assert result.chosen == ["GOOD"]
    assert result.excluded == {
        "GONE": "no bar since 2018-11-12",
        "NEW": "fewer than 21 bars of history",
        "NOBARS": "no bars known at the run's instant",
        "THIN": "illiquid: $100,000 a day, under $5,000,000",
        "WILD": "too volatile: 250% annualised, over 100%",
    }


def test_places_are_shared_by_sector_size_and_filled_by_trend_strength() -> None:
    rows = [_metrics(f"T{i}", "Tech", ret_20d=0.01 * i) for i in range(12)]
    rows += [_metrics(f"E{i}", "Energy", ret_20d=-0.02 * i) for i in range(6)]
    rows += [_metrics("U0", None)]
    result = screen(_snapshot(rows), ScreenRules(max_symbols=6))
    groups = [result.sectors[s] for s in result.chosen]
    assert len(result.chosen) == 6
    assert groups.count("Tech") == 3
    assert groups.count("Energy") == 2
    assert groups.count("(no sector)") == 1  # every group gets a place while places last
    assert {s for s in result.chosen if s.startswith("T")} == {"T11", "T10", "T9"}  # strongest
    assert {s for s in result.chosen if s.startswith("E")} == {"E5", "E4"}  # falls score too
    assert result.excluded["T8"] == "trend score 0.32 ranked below the 3 places of Tech"
    assert screen(_snapshot(rows), ScreenRules(max_symbols=6)) == result  # deterministic


def test_a_cut_snapshot_keeps_its_symbols_rows_and_their_correlations() -> None:
    rows = [_metrics(s, "Tech") for s in ("A", "B", "C", "D")]
    full = _snapshot(rows)
    cut = snapshot_of(full, {"B", "D", "ZZZ"})
    assert [m.symbol for m in cut.symbols] == ["B", "D"]
    assert cut.correlation.symbols == ["B", "D"]
    assert cut.correlation.matrix == [[1.0, 0.04], [0.04, 1.0]]
    assert cut.data_hash == full.data_hash
    assert snapshot_of(full, {"A"}, correlation=False).correlation.matrix == []


class CharRoom:
    """A room counting characters of the JSON: enough to test the planning around it."""

    def __init__(self, limit: int | None) -> None:
        self.limit = limit
        self.asked = 0

    def fits(self, messages: list[dict[str, Any]]) -> bool:
        self.asked += 1
        return self.limit is None or len(json.dumps(messages)) <= self.limit


def _prompt(symbols: Any) -> list[dict[str, Any]]:
    return [{"role": "user", "content": " ".join(symbols)}]


def test_largest_fitting_finds_the_most_items_that_fit() -> None:
    room = CharRoom(limit=len(json.dumps(_prompt(["XXXX"] * 7))))
    count, messages = largest_fitting(20, lambda k: _prompt(["XXXX"] * k), room)
    assert count == 7
    assert messages == _prompt(["XXXX"] * 7)
    assert room.asked <= 6  # bisection, not a walk
    assert largest_fitting(20, lambda k: _prompt(["XXXX"] * k), CharRoom(None))[0] == 20
    assert largest_fitting(20, lambda k: _prompt(["XXXX"] * k), CharRoom(5))[0] == 1


def test_shards_pack_whole_sectors_and_halve_one_that_does_not_fit() -> None:
    chosen = ["A1", "A2", "B1", "C1", "C2", "C3", "C4", "C5", "C6", "C7", "C8"]
    sectors = {s: f"sector-{s[0]}" for s in chosen}
    plan = Screen(chosen, {}, sectors)
    assert plan_shards(plan, _prompt, CharRoom(None)) == [chosen]  # all fit: one call
    four = len(json.dumps(_prompt(["C1"] * 4)))
    shards = plan_shards(plan, _prompt, CharRoom(four))
    assert shards == [["A1", "A2", "B1"], ["C1", "C2", "C3", "C4"], ["C5", "C6", "C7", "C8"]]


def test_notes_on_symbols_a_call_was_not_given_are_refused_with_the_reason() -> None:
    def note(symbol: str) -> ResearchNote:
        return ResearchNote(
            symbol=symbol,
            stance=Stance.BULLISH,
            confidence=Decimal("0.5"),
            summary="s",
            evidence=["e"],
        )

    pack = ResearchPack(regime="r", notes=[note("AAPL"), note("XXXOK")])
    kept, refused = keep_notes_on(pack, {"AAPL", "MSFT"}, "its shard")
    assert kept is not None
    assert [n.symbol for n in kept.notes] == ["AAPL"]
    assert refused == [("XXXOK", "XXXOK is not among its shard")]
    none, all_refused = keep_notes_on(pack, {"MSFT"}, "its shard")
    assert none is None
    assert len(all_refused) == 2
