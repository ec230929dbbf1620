"""`GET /api/council`: the council runs as a page, newest first, on both databases.

The dashboard reads it before `/current` so that a database where no council has sat
answers an empty page, not a 404 the browser logs as an error on every visit.
"""

from __future__ import annotations

from datetime import UTC, datetime

from sqlalchemy import func, select

from db.engine import unit_of_work
from models.council import CouncilRun
from models.enums import Role, RunStatus
from tests.api_support import Api
from tests.council_factories import make_run


def test_runs_are_an_empty_page_before_the_first_sitting_then_newest_first(api: Api) -> None:
    empty = api.get("/api/council", role=Role.VIEWER)
    assert empty.status_code == 200, empty.text
    assert empty.json() == {"items": [], "limit": 50, "offset": 0, "next_offset": None}

    with unit_of_work(api.sessions) as session:
        ids = [
            make_run(session, as_of=datetime(2019, 6, 4 + 7 * k, tzinfo=UTC), status=status).id
            for k, status in enumerate((RunStatus.COMPLETED, RunStatus.FAILED, RunStatus.RUNNING))
        ]
    first = api.get("/api/council", params={"limit": 2}).json()
    assert [run["id"] for run in first["items"]] == ids[::-1][:2]
    assert first["items"][0]["status"] == "running"
    assert first["items"][0]["params"] == {"universe": ["AAPL", "MSFT"]}
    assert first["next_offset"] == 2
    rest = api.get("/api/council", params={"limit": 2, "offset": 2}).json()
    assert ([run["id"] for run in rest["items"]], rest["next_offset"]) == ([ids[0]], None)
    failed = api.get("/api/council", params={"status": "failed"}).json()["items"]
    assert [run["id"] for run in failed] == [ids[1]]
    # The newest in the list is the one /current shows.
    assert api.get("/api/council/current").json()["run"]["id"] == ids[-1]


def test_bad_filters_are_a_422_naming_the_parameter(api: Api) -> None:
    for params, where in (
        ({"status": "sleeping"}, "status"),
        ({"limit": 0}, "limit"),
        ({"since": "2019-06-01"}, "since"),  # an instant needs its offset
        ({"since": "2019-06-02T00:00:00Z", "until": "2019-06-01T00:00:00Z"}, "until"),
    ):
        answer = api.get("/api/council", params=params)
        assert answer.status_code == 422, (params, answer.text)
        assert where in answer.text, (params, answer.text)
    assert api.get("/api/council", role=None).status_code == 401  # a remote caller, no token
    with unit_of_work(api.sessions) as session:
        assert session.scalar(select(func.count()).select_from(CouncilRun)) == 0
