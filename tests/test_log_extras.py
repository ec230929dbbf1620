"""Log lines carry our fields, not other libraries' bookkeeping.

litellm's redaction filter (on its own loggers and on httpx, asyncio, uvicorn.error)
stamps every record it has scrubbed with `litellm_redacted = object()`, which a JSON
line would print as `"<object object at 0x...>"`.
"""

from __future__ import annotations

import io
import json
import logging

import pytest

from services.log_setup import configure_logging
from services.settings import LogFormat


@pytest.fixture
def litellm_loaded() -> None:
    """litellm as the gateway imports it: its filters installed on the loggers it covers."""
    import services.llm.gateway  # noqa: F401  (settings first: the local cost map, no fetch)


def json_lines(stream: io.StringIO) -> list[dict[str, object]]:
    return [json.loads(line) for line in stream.getvalue().splitlines()]


@pytest.mark.usefixtures("litellm_loaded")
def test_a_record_litellm_scrubbed_carries_only_our_fields() -> None:
    stream = io.StringIO()
    configure_logging("INFO", LogFormat.JSON, stream)
    logging.getLogger("httpx").warning("request %s", "slow", extra={"seconds": 3})
    (doc,) = json_lines(stream)
    assert set(doc) == {"ts", "level", "logger", "event", "seconds"}
    assert "object object at" not in stream.getvalue()


@pytest.mark.usefixtures("litellm_loaded")
def test_console_lines_leave_the_marker_out_too() -> None:
    stream = io.StringIO()
    configure_logging("INFO", LogFormat.CONSOLE, stream)
    logging.getLogger("httpx").warning("request.slow", extra={"seconds": 3})
    assert stream.getvalue().rstrip().endswith("WARNING request.slow seconds=3")


def test_a_bare_sentinel_in_extra_is_left_out_and_real_values_stay() -> None:
    stream = io.StringIO()
    configure_logging("INFO", LogFormat.JSON, stream)
    logging.getLogger("aitrader.test").info(
        "fill", extra={"marker": object(), "qty": 3, "note": None, "where": ["a"]}
    )
    (doc,) = json_lines(stream)
    assert "marker" not in doc
    assert (doc["qty"], doc["note"], doc["where"]) == (3, None, ["a"])
