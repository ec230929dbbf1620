"""LLM outputs: what parses, and the incoherent answers that must not."""

from __future__ import annotations

from decimal import Decimal
from typing import Any

import pytest
from pydantic import ValidationError

from models.enums import DecisionAction, Side
from models.llm_outputs import ChairmanVerdict, PeerReviewBatch, PitchProposal, ResearchNote


def pitch(**overrides: Any) -> dict[str, Any]:
    return {
        "symbol": "aapl",
        "side": "buy",
        "conviction": 0.7,
        "thesis": "Earnings momentum.",
        "entry_price": "100",
        "take_profit": "110",
        "stop_loss": "95",
        "horizon_days": 10,
    } | overrides


def call(**overrides: Any) -> dict[str, Any]:
    return {
        "symbol": "AAPL",
        "action": "buy",
        "conviction": 0.6,
        "target_weight": 0.1,
        "rationale": "Best-reviewed pitch.",
        "pitch": "A",
    } | overrides


def test_a_coherent_pitch_parses_from_json() -> None:
    p = PitchProposal.model_validate_json(
        '{"symbol": "msft", "side": "sell", "conviction": 0.4, '
        '"thesis": "Rich valuation.", "entry_price": 100, '
        '"take_profit": 90, "stop_loss": 104, "horizon_days": 5}'
    )
    assert (p.symbol, p.side, p.take_profit) == ("MSFT", Side.SELL, Decimal(90))


@pytest.mark.parametrize(
    ("overrides", "message"),
    [
        ({"stop_loss": "101"}, "stop_loss < entry_price"),
        ({"take_profit": "99"}, "entry_price < take_profit"),
        ({"side": "sell"}, "sell bracket"),
        ({"conviction": 1.5}, "less than or equal to 1"),
        ({"entry_price": "-1", "stop_loss": None}, "greater than 0"),
        ({"horizon_days": 0}, "greater than or equal to 1"),
        ({"symbol": "not a ticker"}, "pattern"),
        ({"thesis": "   "}, "at least 1 character"),
        ({"size": 1000}, "Extra inputs are not permitted"),
    ],
)
def test_incoherent_pitches_are_refused(overrides: dict[str, Any], message: str) -> None:
    with pytest.raises(ValidationError, match=message):
        PitchProposal.model_validate(pitch(**overrides))


def test_a_pitch_without_prices_is_allowed() -> None:
    p = PitchProposal.model_validate(pitch(entry_price=None, take_profit=None, stop_loss=None))
    assert p.entry_price is None


def test_malformed_json_is_a_validation_error_not_a_crash() -> None:
    with pytest.raises(ValidationError):
        PitchProposal.model_validate_json('{"symbol": "AAPL", "side": "buy", "conviction": ')


def test_research_note_needs_evidence() -> None:
    with pytest.raises(ValidationError, match="at least 1 item"):
        ResearchNote.model_validate(
            {
                "symbol": "KO",
                "stance": "bullish",
                "confidence": 0.5,
                "summary": "ok",
                "evidence": [],
            }
        )


def test_reviews_are_anonymous_labels_and_one_per_pitch() -> None:
    ok = PeerReviewBatch.model_validate(
        {"reviews": [{"pitch": "A", "score": 0.3, "critique": "thin"}]}
    )
    assert ok.reviews[0].pitch == "A"
    with pytest.raises(ValidationError, match="more than once"):
        PeerReviewBatch.model_validate(
            {
                "reviews": [
                    {"pitch": "A", "score": 0.3, "critique": "x"},
                    {"pitch": "A", "score": 0.9, "critique": "y"},
                ]
            }
        )
    with pytest.raises(ValidationError, match="pattern"):
        PeerReviewBatch.model_validate(
            {"reviews": [{"pitch": "gpt-4o", "score": 0.3, "critique": "x"}]}
        )


def test_chairman_verdict_is_a_coherent_book() -> None:
    v = ChairmanVerdict.model_validate(
        {
            "calls": [call(), call(symbol="KO", action="hold", target_weight=0, pitch=None)],
            "summary": "s",
        }
    )
    assert [c.action for c in v.calls] == [DecisionAction.BUY, DecisionAction.HOLD]


@pytest.mark.parametrize(
    ("calls", "message"),
    [
        ([call(), call()], "more than one call"),
        ([call(target_weight=0.6), call(symbol="KO", target_weight=0.5)], "above 1"),
        ([call(action="hold")], "hold must have target_weight 0"),
        ([call(target_weight=0)], "positive target_weight"),
    ],
)
def test_incoherent_verdicts_are_refused(calls: list[dict[str, Any]], message: str) -> None:
    with pytest.raises(ValidationError, match=message):
        ChairmanVerdict.model_validate({"calls": calls, "summary": "s"})
