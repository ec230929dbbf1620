"""Every rejection rule, the duplicate rules, and the report's accounting."""

from __future__ import annotations

from pathlib import Path

import pytest

from models.enums import Timeframe
from services.vendors.bar_file import read_bar_file
from tasks.bar_validation import MAX_EXAMPLES, ConflictRule, ValidatedBars, validate_bars
from tests.factories import bar_row, write_bar_csv


def _validate(
    tmp_path: Path,
    rows: list[list[str]],
    rule: ConflictRule = ConflictRule.REJECT,
    timeframe: Timeframe = Timeframe.D1,
) -> ValidatedBars:
    frame = read_bar_file(write_bar_csv(tmp_path / "b.csv", rows), timeframe=timeframe)
    return validate_bars(frame, timeframe, rule)


@pytest.mark.parametrize(
    ("row", "reason"),
    [
        (bar_row(symbol=""), "bad_symbol"),
        (bar_row(symbol="A B"), "bad_symbol"),
        (bar_row(date="2020-13-45"), "bad_timestamp"),
        (bar_row(date="yesterday"), "bad_timestamp"),
        (bar_row(close="n/a"), "bad_number"),
        (bar_row(open=""), "bad_number"),
        (bar_row(open="0", high="0", low="0", close="0"), "non_positive_price"),
        (bar_row(low="-1"), "non_positive_price"),
        (bar_row(high="8", low="9", open="8.5", close="8.5"), "high_below_low"),
        (bar_row(open="11.5"), "open_outside_range"),
        (bar_row(close="8.9"), "close_outside_range"),
        (bar_row(volume="-5"), "bad_volume"),
        (bar_row(volume="lots"), "bad_volume"),
    ],
)
def test_each_rule_rejects_with_its_reason(tmp_path: Path, row: list[str], reason: str) -> None:
    result = _validate(tmp_path, [bar_row(symbol="GOOD"), row])
    assert result.rejected == {reason: 1}
    assert result.valid["symbol"].tolist() == ["GOOD"]
    assert result.examples[0].reason == reason
    assert result.examples[0].line == 3


def test_intraday_stamp_off_the_grid_is_rejected(tmp_path: Path) -> None:
    path = tmp_path / "m.csv"
    path.write_text(
        "timestamp,symbol,open,high,low,close,volume\n"
        "2020-01-02 10:00:00,A,1,1,1,1,1\n"
        "2020-01-02 10:00:30,A,1,1,1,1,1\n"
    )
    result = validate_bars(read_bar_file(path, timeframe=Timeframe.M1), Timeframe.M1)
    assert result.rejected == {"misaligned_timestamp": 1}


def test_identical_duplicates_collapse_into_one(tmp_path: Path) -> None:
    result = _validate(tmp_path, [bar_row(), bar_row(), bar_row()])
    assert len(result.valid) == 1
    assert result.duplicates_collapsed == 2
    assert result.rejected == {}


def test_conflicting_duplicates_are_all_rejected_by_default(tmp_path: Path) -> None:
    result = _validate(tmp_path, [bar_row(volume="1"), bar_row(symbol="B"), bar_row(volume="2")])
    assert result.valid["symbol"].tolist() == ["B"]
    assert result.rejected == {"conflicting_duplicate": 2}
    assert [e.line for e in result.examples] == [2, 4]


@pytest.mark.parametrize(("rule", "kept_volume"), [(ConflictRule.FIRST, 1), (ConflictRule.LAST, 3)])
def test_first_or_last_rule_keeps_that_copy(
    tmp_path: Path, rule: ConflictRule, kept_volume: int
) -> None:
    result = _validate(
        tmp_path, [bar_row(volume="1"), bar_row(volume="2"), bar_row(volume="3")], rule
    )
    assert result.valid["volume"].tolist() == [kept_volume]
    assert result.rejected == {"conflicting_duplicate": 2}


def test_an_invalid_copy_does_not_make_a_conflict(tmp_path: Path) -> None:
    # The shared S&P file has exactly this: a real CBS bar and a zero-price twin.
    result = _validate(
        tmp_path, [bar_row(), bar_row(open="0", high="0", low="0", close="0", volume="0")]
    )
    assert len(result.valid) == 1
    assert result.rejected == {"non_positive_price": 1}


def test_examples_are_capped_but_counts_are_complete(tmp_path: Path) -> None:
    rows = [bar_row(date=f"2020-01-{d:02d}", close="0") for d in range(1, 31)]
    result = _validate(tmp_path, rows)
    assert result.rejected == {"non_positive_price": 30}
    assert len(result.examples) == MAX_EXAMPLES
