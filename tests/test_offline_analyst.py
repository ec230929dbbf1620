"""The offline analyst through litellm: the same call, parsing and pricing as a real model.

Every test goes through `litellm.acompletion(model="offline/...")` (or the
sync `litellm.completion`) with a hand-built snapshot in the prompt's
`<council-context>` block and parses the answer with the stage's schema.
"""

from __future__ import annotations

import asyncio
import os
from datetime import UTC, datetime
from decimal import Decimal
from typing import Any, TypeVar

import pytest

os.environ.setdefault("LITELLM_LOCAL_MODEL_COST_MAP", "True")  # before litellm: no cost-map fetch

import litellm
from litellm.exceptions import BadRequestError, NotFoundError
from pydantic import BaseModel

from models.enums import DecisionAction, Side
from models.llm_outputs import (
    ChairmanVerdict,
    PeerReviewBatch,
    PitchBook,
    PitchProposal,
    ResearchPack,
    Stance,
)
from models.snapshot import Correlation, MarketSnapshot, SectorMetrics, SymbolMetrics
from services.llm.context import embed_context
from services.llm.offline import OFFLINE_MODELS, register_offline_provider

AS_OF = datetime(2024, 6, 7, 20, tzinfo=UTC)
T = TypeVar("T", bound=BaseModel)


def metrics(symbol: str, **overrides: Any) -> SymbolMetrics:
    """A symbol with a flat, calm history unless told otherwise."""
    values: dict[str, Any] = {
        "symbol": symbol,
        "sector": "Tech",
        "last_bar": AS_OF,
        "close": 100.0,
        "ret_1d": 0.0,
        "ret_5d": 0.0,
        "ret_20d": 0.0,
        "vol_20d": 0.20,
        "drawdown_60d": -0.02,
        "dist_sma_20": 0.0,
        "dist_sma_50": 0.0,
    }
    return SymbolMetrics.model_validate(values | overrides)


# Strong uptrend, downtrend, dip in an uptrend, 5d spike, calm uptrend, and a new listing.
UP = metrics("AAA", ret_5d=0.03, ret_20d=0.08, dist_sma_20=0.04, dist_sma_50=0.07)
DOWN = metrics(
    "BBB",
    close=50.0,
    ret_5d=-0.04,
    ret_20d=-0.09,
    vol_20d=0.25,
    dist_sma_20=-0.05,
    dist_sma_50=-0.08,
    drawdown_60d=-0.18,
    sector="Energy",
)
DIP = metrics(
    "CCC", close=75.0, ret_5d=-0.06, ret_20d=0.01, vol_20d=0.22, dist_sma_20=-0.03, dist_sma_50=0.02
)
SPIKE = metrics(
    "DDD",
    close=20.0,
    ret_5d=0.07,
    ret_20d=0.03,
    vol_20d=0.30,
    dist_sma_20=0.05,
    dist_sma_50=0.03,
    sector="Energy",
)
CALM = metrics(
    "EEE", close=40.0, ret_5d=0.005, ret_20d=0.02, vol_20d=0.10, dist_sma_20=0.01, dist_sma_50=0.03
)
NEW = SymbolMetrics(symbol="FFF", last_bar=AS_OF, close=12.5)


def snapshot(*symbols: SymbolMetrics, missing: tuple[str, ...] = ()) -> MarketSnapshot:
    chosen = list(symbols or (UP, DOWN, DIP, SPIKE, CALM, NEW))
    names = [m.symbol for m in chosen]
    return MarketSnapshot(
        as_of=AS_OF,
        knowledge_cutoff=AS_OF,
        universe=[*names, *missing],
        missing=list(missing),
        symbols=chosen,
        sectors=[
            SectorMetrics(
                sector="Tech",
                symbols=3,
                mean_ret_5d=-0.01,
                mean_ret_20d=0.03,
                breadth_above_sma_50=1.0,
            ),
            SectorMetrics(
                sector="Energy",
                symbols=2,
                mean_ret_5d=0.015,
                mean_ret_20d=-0.03,
                breadth_above_sma_50=0.5,
            ),
        ],
        correlation=Correlation(
            window=20, symbols=names[:2], matrix=[[1.0, 0.7], [0.7, 1.0]][: len(names[:2])]
        ),
        bars_used=300,
        data_hash="0" * 64,
    )


def prompt(stage: str, snap: MarketSnapshot | None = None, **extra: Any) -> list[dict[str, str]]:
    payload = {
        "stage": stage,
        "member": "member-1",
        "persona": None,
        "snapshot": (snap or snapshot()).model_dump(mode="json"),
    } | extra
    return [
        {"role": "system", "content": "You are a council member. Answer in JSON."},
        {"role": "user", "content": f"Do your {stage}.\n{embed_context(payload)}"},
    ]


def complete(model: str, messages: list[dict[str, str]]) -> Any:
    register_offline_provider()
    return asyncio.run(litellm.acompletion(model=model, messages=messages))


def ask(schema: type[T], model: str, stage: str, **context: Any) -> T:
    response = complete(model, prompt(stage, **context))
    return schema.model_validate_json(response.choices[0].message.content)


def labelled(*pitches: PitchProposal) -> list[dict[str, Any]]:
    return [
        {"label": chr(ord("A") + i), "pitch": p.model_dump(mode="json")}
        for i, p in enumerate(pitches)
    ]


def pitch(symbol: str, side: str, entry: str, stop: str, target: str) -> PitchProposal:
    return PitchProposal(
        symbol=symbol,
        side=Side(side),
        conviction=Decimal("0.6"),
        thesis="A test pitch.",
        entry_price=Decimal(entry),
        stop_loss=Decimal(stop),
        take_profit=Decimal(target),
        horizon_days=5,
    )


# --- pitches: the personas --------------------------------------------------------


def test_momentum_buys_the_strongest_and_sells_the_weakest() -> None:
    book = ask(PitchBook, "offline/momentum", "pitch")
    sides = {p.symbol: p.side for p in book.pitches}
    assert sides["AAA"] is Side.BUY
    assert sides["BBB"] is Side.SELL
    assert "CCC" not in sides  # below its SMA20: no confirmed trend
    assert len(book.pitches) <= 3


def test_mean_reversion_buys_the_dip_in_an_uptrend_and_sells_the_spike() -> None:
    book = ask(PitchBook, "offline/mean_reversion", "pitch")
    sides = {p.symbol: p.side for p in book.pitches}
    assert sides["CCC"] is Side.BUY
    assert sides["DDD"] is Side.SELL
    assert sides["AAA"] is Side.SELL  # momentum's favourite, faded
    assert "BBB" not in sides  # a 5d loser below its SMA50 is a falling knife


def test_risk_parity_buys_calm_uptrends_with_conviction_inverse_to_vol() -> None:
    book = ask(PitchBook, "offline/risk_parity", "pitch")
    assert {p.side for p in book.pitches} == {Side.BUY}
    assert "DDD" not in {p.symbol for p in book.pitches}  # above the median vol
    by_conviction = sorted(book.pitches, key=lambda p: p.conviction, reverse=True)
    vols = {m.symbol: m.vol_20d or 0.0 for m in snapshot().symbols}
    assert [vols[p.symbol] for p in by_conviction] == sorted(vols[p.symbol] for p in book.pitches)
    assert by_conviction[0].symbol == "EEE"


def test_contrarian_fades_the_research_consensus() -> None:
    research = [
        {"member": name, "pack": ask(ResearchPack, name, "research").model_dump(mode="json")}
        for name in ("offline/momentum", "offline/risk_parity")
    ]
    book = ask(PitchBook, "offline/contrarian", "pitch", research=research)
    sides = {p.symbol: p.side for p in book.pitches}
    assert sides["AAA"] is Side.SELL  # both packs bullish on it
    assert sides["BBB"] is Side.BUY  # both packs bearish on it
    assert all("research consensus" in p.thesis for p in book.pitches)


def test_contrarian_without_research_pitches_nothing_on_moderate_moves() -> None:
    assert ask(PitchBook, "offline/contrarian", "pitch").pitches == []


def test_every_pitch_brackets_the_last_close_with_reward_at_least_1_5_times_risk() -> None:
    closes = {m.symbol: Decimal(str(m.close)) for m in snapshot().symbols}
    for model in ("offline/momentum", "offline/mean_reversion", "offline/risk_parity"):
        for p in ask(PitchBook, model, "pitch").pitches:
            assert p.entry_price == closes[p.symbol]
            assert p.stop_loss is not None
            assert p.take_profit is not None
            assert p.entry_price is not None
            reward, risk = abs(p.take_profit - p.entry_price), abs(p.entry_price - p.stop_loss)
            assert reward >= Decimal("1.5") * risk > 0
            assert p.horizon_days == 5
            assert 0 <= p.conviction <= 1
            assert p.entry_price.as_tuple().exponent == -2
            assert "vol" in p.thesis
            assert "offline analyst" in p.thesis.lower()


# --- research -------------------------------------------------------------------------


def test_research_reads_the_regime_and_cites_the_figures() -> None:
    pack = ask(ResearchPack, "offline/momentum", "research", snap=snapshot(missing=("GGG",)))
    assert pack.regime.startswith("risk-on: 80% of 5 symbols above SMA50")
    notes = {n.symbol: n for n in pack.notes}
    assert notes["AAA"].stance is Stance.BULLISH
    assert notes["BBB"].stance is Stance.BEARISH
    assert notes["AAA"].confidence > notes["EEE"].confidence
    assert "20d return +8.0%" in notes["AAA"].evidence
    assert "FFF" not in notes  # no history: no reading, and no guess
    risks = " | ".join(pack.risks)
    assert "BBB -18.0%" in risks
    assert "correlation 0.70" in risks
    assert "GGG" in risks
    assert "momentum reading: FFF" in risks
    views = {v.sector: v.stance for v in pack.sector_views}
    assert views == {"Energy": Stance.NEUTRAL, "Tech": Stance.BULLISH}  # Energy: 50% breadth


def test_research_keeps_the_twenty_strongest_and_weakest_of_a_large_universe() -> None:
    many = [
        metrics(f"S{i:02d}", ret_20d=(i - 15) / 100, dist_sma_20=(i - 15) / 100, dist_sma_50=0.01)
        for i in range(30)
    ]
    pack = ask(ResearchPack, "offline/momentum", "research", snap=snapshot(*many))
    symbols = {n.symbol for n in pack.notes}
    assert len(symbols) == 20
    assert {"S00", "S09", "S20", "S29"} <= symbols
    assert not symbols & {"S10", "S15", "S19"}


def test_a_snapshot_without_enough_history_gives_neutral_notes_not_guesses() -> None:
    pack = ask(ResearchPack, "offline/momentum", "research", snap=snapshot(NEW))
    [note] = pack.notes
    assert (note.symbol, note.stance, note.confidence) == ("FFF", Stance.NEUTRAL, Decimal(0))
    assert note.evidence == ["close 12.50"]


# --- review and chairman ---------------------------------------------------------------


def test_review_scores_each_labelled_pitch_from_the_data() -> None:
    shown = labelled(
        pitch("AAA", "buy", "100", "97.18", "105.63"),  # with the trend, 2x reward/risk
        pitch("BBB", "buy", "53", "52.9", "53.05"),  # against the trend, tight stop, poor R/R
        pitch("ZZZ", "sell", "10", "11", "8"),  # not in the snapshot
    )
    batch = ask(PeerReviewBatch, "offline/risk_parity", "review", pitches=shown)
    reviews = {r.pitch: r for r in batch.reviews}
    assert sorted(reviews) == ["A", "B", "C"]
    assert reviews["A"].score > Decimal("0.7") > reviews["B"].score
    assert reviews["B"].score < Decimal("0.3")
    assert reviews["C"].score == Decimal("0.1")
    assert reviews["A"].flaws == []
    flaws = " | ".join(reviews["B"].flaws)
    assert "data against the buy" in flaws
    assert "reward/risk 0.5 below 1.5" in flaws
    assert "stop inside the noise" in flaws
    assert "+6.0% from the last close" in flaws
    assert "20d +8.0%" in reviews["A"].critique
    assert reviews["C"].flaws == ["no data for ZZZ in the snapshot"]


def test_chairman_respects_max_positions_max_weight_and_only_pitched_labels() -> None:
    shown = labelled(
        pitch("AAA", "buy", "100", "97", "106"),
        pitch("BBB", "sell", "50", "52", "46"),
        pitch("AAA", "sell", "100", "103", "94"),
        pitch("EEE", "buy", "40", "39", "42"),
        pitch("CCC", "buy", "75", "73", "79"),
    )
    ranking = [
        {"label": "Z", "score": 0.99, "reviews": 3},  # never pitched
        {"label": "C", "score": 0.9, "reviews": 3},
        {"label": "A", "score": 0.8, "reviews": 3},  # AAA again: C ranked better
        {"label": "B", "score": 0.6, "reviews": 3},
        {"label": "D", "score": 0.55, "reviews": 3},
        {"label": "E", "score": 0.3, "reviews": 3},  # below the floor
    ]
    verdict = ask(
        ChairmanVerdict,
        "offline/momentum",
        "chairman",
        pitches=shown,
        ranking=ranking,
        max_positions=2,
        max_weight=0.3,
    )
    assert [(c.pitch, c.symbol, c.action) for c in verdict.calls] == [
        ("C", "AAA", DecisionAction.SELL),
        ("B", "BBB", DecisionAction.SELL),
    ]
    assert verdict.calls[0].target_weight == Decimal("0.3")
    assert verdict.calls[1].target_weight == Decimal("0.2")  # 0.3 x 0.6 / 0.9
    assert "Z was not among the pitches shown" in verdict.summary
    assert "A repeats AAA" in verdict.summary
    assert "E scored 0.30, below the 0.50 floor" in verdict.summary


def test_chairman_weights_never_sum_past_one() -> None:
    shown = labelled(*(pitch(s, "buy", "10", "9", "12") for s in ("AAA", "CCC", "EEE", "DDD")))
    ranking = [{"label": label, "score": 0.8, "reviews": 2} for label in "ABCD"]
    verdict = ask(
        ChairmanVerdict,
        "offline/momentum",
        "chairman",
        pitches=shown,
        ranking=ranking,
        max_positions=4,
        max_weight=0.5,
    )
    weights = [c.target_weight for c in verdict.calls]
    assert weights == [Decimal("0.25")] * 4
    assert sum(weights) <= 1


def test_chairman_without_limits_in_the_context_is_a_bad_request() -> None:
    with pytest.raises(BadRequestError, match="max_positions and max_weight"):
        complete("offline/momentum", prompt("chairman", pitches=[], ranking=[]))


def test_a_council_runs_end_to_end_on_offline_members() -> None:
    personas = ("offline/momentum", "offline/mean_reversion", "offline/risk_parity")
    research = [
        {"member": m, "pack": ask(ResearchPack, m, "research").model_dump(mode="json")}
        for m in personas
    ]
    pms = (*personas, "offline/contrarian")
    books = [ask(PitchBook, m, "pitch", research=research) for m in pms]
    shown = labelled(*(p for book in books for p in book.pitches))
    batches = [ask(PeerReviewBatch, m, "review", pitches=shown) for m in personas]
    scores: dict[str, list[Decimal]] = {}
    for batch in batches:
        for review in batch.reviews:
            scores.setdefault(review.pitch, []).append(review.score)
    means = {label: sum(s) / len(s) for label, s in scores.items()}
    ranking = [
        {"label": label, "score": float(means[label]), "reviews": len(scores[label])}
        for label in sorted(means, key=lambda label: (-means[label], label))
    ]
    verdict = ask(
        ChairmanVerdict,
        "offline/analyst",
        "chairman",
        pitches=shown,
        ranking=ranking,
        max_positions=3,
        max_weight=0.25,
    )
    labels = {p["label"]: PitchProposal.model_validate(p["pitch"]) for p in shown}
    assert 0 < len(verdict.calls) <= 3
    for call in verdict.calls:
        assert call.pitch in labels
        assert labels[call.pitch].symbol == call.symbol
        assert call.action.value == labels[call.pitch].side.value
        assert 0 < call.target_weight <= Decimal("0.25")


# --- the provider contract ----------------------------------------------------------------


@pytest.mark.parametrize(
    ("stage", "extra"),
    [
        ("research", {}),
        ("pitch", {}),
        ("review", {"pitches": labelled(pitch("AAA", "buy", "100", "97", "106"))}),
        (
            "chairman",
            {
                "pitches": labelled(pitch("AAA", "buy", "100", "97", "106")),
                "ranking": [{"label": "A", "score": 0.7, "reviews": 1}],
                "max_positions": 1,
                "max_weight": 0.2,
            },
        ),
    ],
)
def test_the_same_prompt_gives_byte_identical_content(stage: str, extra: dict[str, Any]) -> None:
    first = complete("offline/momentum", prompt(stage, **extra))
    second = complete("offline/momentum", prompt(stage, **extra))
    assert first.choices[0].message.content == second.choices[0].message.content


def test_the_response_names_the_offline_model_carries_usage_and_costs_nothing() -> None:
    response = complete("offline/mean_reversion", prompt("research"))
    assert response.model == "offline/mean_reversion"
    assert response.choices[0].finish_reason == "stop"
    usage = response.usage
    assert usage.prompt_tokens > 100
    assert usage.completion_tokens > 10
    assert usage.total_tokens == usage.prompt_tokens + usage.completion_tokens
    assert litellm.completion_cost(completion_response=response) == 0.0
    assert "Offline analyst" in response.choices[0].message.content


def test_every_offline_model_is_priced_at_zero() -> None:
    register_offline_provider()
    for model in OFFLINE_MODELS:
        assert litellm.cost_per_token(model=model, prompt_tokens=1000, completion_tokens=1000) == (
            0.0,
            0.0,
        )


def test_the_sync_call_answers_like_the_async_one() -> None:
    register_offline_provider()
    messages = prompt("pitch")
    sync = litellm.completion(model="offline/momentum", messages=messages)
    assert (
        sync.choices[0].message.content
        == complete("offline/momentum", messages).choices[0].message.content
    )


def test_offline_analyst_takes_the_persona_the_context_names() -> None:
    messages = prompt("pitch")
    messages[-1]["content"] = messages[-1]["content"].replace(
        '"persona": null', '"persona": "mean_reversion"'
    )
    generic = complete("offline/analyst", messages).choices[0].message.content
    named = complete("offline/mean_reversion", prompt("pitch")).choices[0].message.content
    assert generic == named


@pytest.mark.parametrize(
    "content",
    [
        "Pitch something good.",
        "Go.\n<council-context>\n{not json\n</council-context>",
        '<council-context>\n{"stage": "pitch", "member": "m"}\n</council-context>',
        '<council-context>\n{"stage": "vote", "snapshot": {}}\n</council-context>',
    ],
    ids=["no-block", "not-json", "no-snapshot", "unknown-stage"],
)
def test_a_prompt_without_a_usable_context_is_a_bad_request(content: str) -> None:
    with pytest.raises(BadRequestError, match="offline analyst"):
        complete("offline/momentum", [{"role": "user", "content": content}])


def test_an_unknown_offline_model_is_refused() -> None:
    with pytest.raises(NotFoundError, match="offline/analyst"):
        complete("offline/gpt-5", prompt("research"))


def test_registering_twice_registers_once() -> None:
    register_offline_provider()
    register_offline_provider()
    assert [i["provider"] for i in litellm.custom_provider_map].count("offline") == 1


def test_a_streaming_request_is_refused_as_a_bad_request() -> None:
    register_offline_provider()

    async def stream() -> None:
        chunks = await litellm.acompletion(
            model="offline/momentum", messages=prompt("research"), stream=True
        )
        async for _ in chunks:
            pass

    with pytest.raises(BadRequestError, match="streaming is not served"):
        asyncio.run(stream())
