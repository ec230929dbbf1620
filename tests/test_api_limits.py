"""Bounded input: a body over the byte limit is a 413 before auth and before the app reads
it; JSON with too many keys or too deep a nest is a 413 before pydantic walks it; a 422
lists at most 20 problems; a day a job takes is one the flow can do arithmetic on."""

from __future__ import annotations

import json
import socket
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
import pytest
from sqlalchemy import func, select

from api.app import create_app
from api.json_shape import MAX_DEPTH, MAX_MEMBERS, json_oversize
from db.engine import make_engine, make_session_factory, unit_of_work
from db.queries.tokens import issue_token
from models.enums import Role
from models.ops import AuditEvent, Job
from services.settings import Settings
from tests.api_support import Api, api_settings, running_api
from tests.live_server import serve_in_thread

LIMIT = 1_048_576
SMALL = 10_000  # bytes: no refusal may be bigger
BACKTEST = {
    "type": "backtest",
    "params": {
        "strategy": "sma_cross",
        "params": {"fast": 10, "slow": 50},
        "symbols": ["AAPL", "MSFT"],
        "start": "2016-01-01",
        "end": "2019-12-31",
    },
}


def padded(body: dict[str, Any], size: int) -> bytes:
    """`body` as JSON of exactly `size` bytes: blanks before the closing brace."""
    raw = json.dumps(body).encode()
    assert len(raw) <= size
    return raw[:-1] + b" " * (size - len(raw)) + b"}"


def chunks(data: bytes, size: int = 65_536) -> Iterator[bytes]:
    """`data` as a stream: httpx sends it chunked, with no Content-Length."""
    for start in range(0, len(data), size):
        yield data[start : start + size]


def many_keys(count: int) -> bytes:
    return json.dumps({"symbol": "AAPL", **{f"k{i:06}": 0 for i in range(count)}}).encode()


JSON = {"Content-Type": "application/json"}


def assert_refused(response: httpx.Response, status: int = 413) -> dict[str, Any]:
    assert response.status_code == status, response.text[:500]
    assert response.headers["content-type"] == "application/problem+json"
    assert len(response.content) < SMALL
    problem: dict[str, Any] = response.json()
    assert problem["status"] == status
    assert problem["request_id"] == response.headers["x-request-id"]
    return problem


def watchlist_writes(api: Api) -> int:
    with api.sessions() as session:
        count = select(func.count()).select_from(AuditEvent)
        return session.scalar(count.where(AuditEvent.event.like("watchlist.%"))) or 0


# --- bytes ---------------------------------------------------------------------------


def test_a_body_declared_over_the_limit_is_a_413_before_auth(api: Api) -> None:
    body = padded({"symbol": "AAPL"}, LIMIT + 1)
    anonymous = api.post("/api/watchlist", role=None, content=body, headers=JSON)
    problem = assert_refused(anonymous)  # not 401: nothing about the request was looked at
    assert problem["title"] == "Content too large"
    assert problem["detail"] == f"the body is {LIMIT + 1} bytes; at most {LIMIT} are accepted"
    assert problem["errors"] == [{"field": "body", "message": problem["detail"]}]
    assert_refused(api.post("/api/watchlist", content=body, headers=JSON))
    assert api.get("/api/watchlist", role=Role.TRADER).json() == []
    assert watchlist_writes(api) == 0


def test_a_chunked_body_over_the_limit_is_a_413_and_writes_nothing(api: Api) -> None:
    body = padded({"symbol": "AAPL"}, LIMIT + 1)
    refused = api.post("/api/watchlist", content=chunks(body), headers=JSON)
    assert assert_refused(refused)["detail"] == f"the body passed {LIMIT} bytes, the most accepted"
    assert api.get("/api/watchlist", role=Role.TRADER).json() == []
    assert watchlist_writes(api) == 0


def test_a_body_at_the_limit_is_read_as_usual_sent_whole_or_chunked(api: Api) -> None:
    whole = api.post("/api/watchlist", content=padded({"symbol": "AAPL"}, LIMIT), headers=JSON)
    assert whole.status_code == 201, whole.text
    streamed = api.post(
        "/api/watchlist", content=chunks(padded({"symbol": "MSFT"}, LIMIT)), headers=JSON
    )
    assert streamed.status_code == 201, streamed.text
    assert [i["symbol"] for i in api.get("/api/watchlist", role=Role.TRADER).json()] == [
        "AAPL",
        "MSFT",
    ]
    assert api.get("/health").status_code == 200


def test_the_limit_is_the_api_max_body_bytes_setting(
    api_db_url: str, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    monkeypatch.setenv("API_MAX_BODY_BYTES", "4096")
    assert Settings().api_max_body_bytes == 4096
    monkeypatch.chdir(tmp_path)
    with running_api(api_settings(api_db_url, api_max_body_bytes=2048)) as api:
        refused = api.post("/api/watchlist", content=padded({"symbol": "AAPL"}, 2049), headers=JSON)
        assert "at most 2048" in assert_refused(refused)["detail"]
        taken = api.post("/api/watchlist", content=padded({"symbol": "AAPL"}, 2048), headers=JSON)
        assert taken.status_code == 201, taken.text


# --- JSON structure and the size of a 422 ----------------------------------------------


def test_an_object_of_400k_keys_is_refused_at_once_with_a_small_answer(api: Api) -> None:
    body = many_keys(400_000)  # 4.7 MB
    assert_refused(api.post("/api/watchlist", role=Role.VIEWER, content=body, headers=JSON))
    assert api.get("/health").status_code == 200


def test_json_with_too_many_keys_or_too_deep_is_a_413_before_validation(api: Api) -> None:
    keys = many_keys(50_000)  # ~0.7 MB: within the byte limit
    assert len(keys) < LIMIT
    problem = assert_refused(api.post("/api/watchlist", role=None, content=keys, headers=JSON))
    assert problem["detail"] == (
        f"the JSON body holds 50001 keys and items; at most {MAX_MEMBERS} are accepted"
    )
    items = {"type": "council", "params": {"universe": ["AAPL"] * (MAX_MEMBERS + 1)}}
    assert_refused(api.post("/api/jobs", json=items))
    deep = b'{"symbol": "AAPL", "note": ' + b"[" * 5_000 + b"]" * 5_000 + b"}"
    problem = assert_refused(api.post("/api/watchlist", content=deep, headers=JSON))
    assert problem["detail"] == f"the JSON body nests deeper than {MAX_DEPTH} levels"
    assert api.get("/api/watchlist", role=Role.TRADER).json() == []
    assert watchlist_writes(api) == 0
    with api.sessions() as session:
        assert session.scalar(select(func.count()).select_from(Job)) == 0


def test_a_422_lists_twenty_problems_and_counts_the_rest(api: Api) -> None:
    extra = api.post("/api/watchlist", content=many_keys(5_000), headers=JSON)
    problem = assert_refused(extra, 422)
    assert len(problem["errors"]) == 20
    assert problem["errors"][0]["field"] == "body.k000000"
    assert problem["detail"].endswith("; and 4980 more problems not listed")
    long_key = api.post("/api/watchlist", json={"symbol": "AAPL", "k" * 100_000: 1})
    (error,) = assert_refused(long_key, 422)["errors"]
    assert error["field"] == "body." + "k" * 192 + "..."


def test_commas_and_brackets_inside_strings_are_not_structure() -> None:
    text = json.dumps({"note": "[{," * 20_000 + '\\"[' * 10, "tags": ["a", "b,]"]}).encode()
    assert json_oversize(text) is None
    items = json.dumps({"ok": ["x"] * MAX_MEMBERS}).encode()  # 1 key + 10,000 items
    assert json_oversize(items) == (
        f"the JSON body holds {MAX_MEMBERS + 1} keys and items; at most {MAX_MEMBERS} are accepted"
    )
    assert json_oversize(json.dumps({"a": ["x"] * (MAX_MEMBERS - 1)}).encode()) is None
    assert json_oversize(b"[" * MAX_DEPTH + b"]" * MAX_DEPTH) is None
    assert json_oversize(b"[" + b"[[]]," * 100 + b"[]]") is None  # many brackets, not deep
    assert json_oversize(b"[" * (MAX_DEPTH + 1) + b"]" * (MAX_DEPTH + 1)) == (
        f"the JSON body nests deeper than {MAX_DEPTH} levels"
    )
    assert json_oversize(b'["' + b'\\",' * 300_000 + b'"]') is None  # one string of escapes


# --- days a job takes ---------------------------------------------------------------


@pytest.mark.parametrize(
    ("path", "body", "field"),
    [
        ("/api/jobs", {"type": "council", "params": {"as_of": "9999-12-31"}}, "council.params."),
        ("/api/jobs", {"type": "research", "params": {"as_of": "9999-12-31"}}, "research.params."),
        ("/api/council/synthesize", {"as_of": "9999-12-31"}, ""),
        ("/api/research/generate", {"as_of": "3000-01-01"}, ""),
    ],
)
def test_a_job_as_of_past_2999_is_a_422_naming_the_field_and_no_job(
    api: Api, path: str, body: dict[str, Any], field: str
) -> None:
    (error,) = assert_refused(api.post(path, json=body), 422)["errors"]
    assert error["field"] == f"body.{field}as_of"
    assert error["message"] == "Input should be less than or equal to 2999-12-31"
    assert api.get("/api/jobs").json()["items"] == []


def test_a_council_cannot_sit_as_of_a_day_still_to_come(api: Api) -> None:
    tomorrow = datetime.now(UTC).date() + timedelta(days=2)  # a day ahead of any time zone
    refused = api.post("/api/jobs", json={"type": "council", "params": {"as_of": str(tomorrow)}})
    (error,) = assert_refused(refused, 422)["errors"]
    assert error["field"] == "body.council.params.as_of"
    assert "is after today" in error["message"]
    assert api.get("/api/jobs").json()["items"] == []


@pytest.mark.parametrize("field", ["start", "end"])
def test_a_backtest_day_past_2999_is_a_422_naming_the_field_and_no_job(
    api: Api, field: str
) -> None:
    body = {**BACKTEST, "params": {**BACKTEST["params"], field: "9999-12-31"}}  # type: ignore[dict-item]
    errors = assert_refused(api.post("/api/jobs", json=body), 422)["errors"]
    assert errors[0]["field"] == f"body.backtest.params.{field}"
    assert api.get("/api/jobs").json()["items"] == []


# --- over the wire: uvicorn on loopback ----------------------------------------------


@pytest.fixture
def live(
    api_db_url: str, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> Iterator[tuple[str, dict[str, str]]]:
    """The app under uvicorn; yields (base URL, a trader's Authorization header)."""
    monkeypatch.chdir(tmp_path)
    engine = make_engine(api_db_url)
    with unit_of_work(make_session_factory(engine)) as session:
        token = issue_token(session, "trader-user", Role.TRADER).secret
    engine.dispose()
    with serve_in_thread(create_app(api_settings(api_db_url, log_level="WARNING"))) as url:
        yield url, {"Authorization": f"Bearer {token}"}


def test_over_the_wire_the_413_comes_before_the_body_is_sent(
    live: tuple[str, dict[str, str]],
) -> None:
    url, _ = live
    host, port = url.removeprefix("http://").split(":")
    with socket.create_connection((host, int(port)), timeout=10) as raw:
        raw.sendall(
            b"POST /api/watchlist HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
            b"Content-Length: 100000000\r\n\r\n"
        )  # and not a byte of the 100 MB
        answer = b""
        while b"\r\n\r\n" not in answer and (received := raw.recv(65_536)):
            answer += received
        assert answer.startswith(b"HTTP/1.1 413 "), answer[:200]
        assert b"\r\nconnection: close\r\n" in answer.lower()  # the rest is not wanted
        with httpx.Client(base_url=url, timeout=10) as client:  # meanwhile, on another line
            assert client.get("/health").status_code == 200


def test_over_the_wire_a_chunked_body_is_cut_off_at_the_limit(
    live: tuple[str, dict[str, str]],
) -> None:
    url, auth = live
    body = padded({"symbol": "AAPL"}, 2 * LIMIT)
    with httpx.Client(base_url=url, headers=auth, timeout=30) as client:
        refused = client.post("/api/watchlist", content=chunks(body), headers=JSON)
        assert assert_refused(refused)["detail"].startswith("the body passed")
        assert client.get("/api/watchlist").json() == []
        small = padded({"symbol": "MSFT"}, LIMIT - 10)
        taken = client.post("/api/watchlist", content=chunks(small, 4_096), headers=JSON)
        assert taken.status_code == 201, taken.text
        assert [i["symbol"] for i in client.get("/api/watchlist").json()] == ["MSFT"]
        assert client.get("/health").status_code == 200
