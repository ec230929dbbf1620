"""Which week a council sits: a day the stored bars cover, or the latest one, said aloud.

Both databases; the API's refusal is a 422 naming the field and the range, with
nothing written.
"""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta
from decimal import Decimal

import pytest
from sqlalchemy import func, select
from sqlalchemy.orm import Session, sessionmaker

from db.engine import unit_of_work
from db.queries.bar_coverage import daily_range
from db.queries.instruments import ensure_instruments
from models.enums import Timeframe
from models.errors import InvalidInputError
from models.market import Bar
from models.ops import Job
from tasks.council.week import GRACE_DAYS, council_day
from tests.api_support import Api

FIRST, LAST = date(2020, 1, 6), date(2020, 1, 10)  # Monday to Friday


@pytest.fixture
def week(sessions: sessionmaker[Session]) -> sessionmaker[Session]:
    """AAPL Monday to Friday; MSFT only to Wednesday."""
    with unit_of_work(sessions) as session:
        ensure_instruments(session, ["AAPL", "MSFT"])
        for symbol, last in (("AAPL", LAST), ("MSFT", date(2020, 1, 8))):
            day = FIRST
            while day <= last:
                price = Decimal(100)
                session.add(
                    Bar(
                        symbol=symbol,
                        timeframe=Timeframe.D1,
                        ts=datetime(day.year, day.month, day.day, tzinfo=UTC),
                        open=price,
                        high=price,
                        low=price,
                        close=price,
                        volume=Decimal(1),
                    )
                )
                day += timedelta(days=1)
    return sessions


def test_the_stored_range_is_the_first_and_last_daily_bar(week: sessionmaker[Session]) -> None:
    with week() as session:
        assert daily_range(session) == (FIRST, LAST)
        assert daily_range(session, ["msft"]) == (FIRST, date(2020, 1, 8))
        assert daily_range(session, ["NOPE"]) is None


def test_no_day_given_sits_the_latest_stored_day_and_says_so(
    week: sessionmaker[Session],
) -> None:
    with week() as session:
        chosen = council_day(session, None)
        assert (chosen.day, chosen.defaulted) == (LAST, True)
        assert chosen.describe() == (
            "as of 2020-01-10 (no as_of given: the latest day with stored daily bars)"
        )
        assert council_day(session, None, ["MSFT"]).day == date(2020, 1, 8)


def test_a_day_inside_the_range_or_just_after_it_is_taken_as_given(
    week: sessionmaker[Session],
) -> None:
    with week() as session:
        for day in (FIRST, date(2020, 1, 8), LAST + timedelta(days=GRACE_DAYS)):
            chosen = council_day(session, day)
            assert (chosen.day, chosen.defaulted) == (day, False)
            assert chosen.describe() == f"as of {day}"


@pytest.mark.parametrize(
    "day", [date(2020, 1, 5), LAST + timedelta(days=GRACE_DAYS + 1), date(2020, 6, 26)]
)
def test_a_day_outside_the_stored_range_is_refused_with_the_range(
    week: sessionmaker[Session], day: date
) -> None:
    with week() as session, pytest.raises(InvalidInputError) as caught:
        council_day(session, day)
    assert caught.value.field == "as_of"
    assert caught.value.message == (
        f"{day} is outside the stored daily bars (2020-01-06 to 2020-01-10): "
        "pick a day in that range, or import the bars that cover it"
    )


def test_a_day_to_come_is_refused_before_the_range_is_read(week: sessionmaker[Session]) -> None:
    with week() as session, pytest.raises(InvalidInputError, match="is after today"):
        council_day(session, date(2999, 1, 1))


def test_with_no_bars_stored_the_refusal_says_how_to_get_some(
    sessions: sessionmaker[Session],
) -> None:
    with sessions() as session, pytest.raises(InvalidInputError) as caught:
        council_day(session, None, ["AAPL"], field="body.params.as_of")
    assert caught.value.field == "body.params.as_of"
    assert caught.value.message == (
        "no daily bars are stored for AAPL: import some first "
        "(`aitrader data import PATH`, or `aitrader demo`)"
    )


@pytest.mark.parametrize("kind", ["council", "research"])
def test_a_job_as_of_a_day_past_the_stored_bars_is_a_422_and_writes_nothing(
    api: Api, kind: str
) -> None:
    response = api.post("/api/jobs", json={"type": kind, "params": {"as_of": "2020-06-26"}})
    assert response.status_code == 422, response.text
    [error] = response.json()["errors"]
    assert error["field"] == "body.params.as_of"
    assert "outside the stored daily bars (2015-01-12 to 2020-01-10)" in error["message"]
    with api.sessions() as session:
        assert session.scalar(select(func.count()).select_from(Job)) == 0
