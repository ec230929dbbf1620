from __future__ import annotations

import io
import json
import logging

from services.log_setup import configure_logging
from services.settings import LogFormat


def test_json_lines_carry_event_and_fields() -> None:
    stream = io.StringIO()
    configure_logging("INFO", LogFormat.JSON, stream)
    logging.getLogger("aitrader.test").info("bars.imported", extra={"rows": 3, "symbol": "AAPL"})
    doc = json.loads(stream.getvalue().strip().splitlines()[-1])
    assert doc["event"] == "bars.imported"
    assert doc["rows"] == 3
    assert doc["symbol"] == "AAPL"
    assert doc["level"] == "info"
    assert doc["ts"].endswith("+00:00")


def test_console_lines_are_readable_and_level_filters() -> None:
    stream = io.StringIO()
    configure_logging("WARNING", LogFormat.CONSOLE, stream)
    log = logging.getLogger("aitrader.test")
    log.info("hidden")
    log.warning("import.slow", extra={"seconds": 61})
    assert "hidden" not in stream.getvalue()
    assert "WARNING import.slow seconds=61" in stream.getvalue()


def test_configuring_twice_keeps_one_handler() -> None:
    configure_logging("INFO", LogFormat.JSON, io.StringIO())
    configure_logging("INFO", LogFormat.JSON, io.StringIO())
    ours = [h for h in logging.getLogger().handlers if h.get_name() == "aitrader"]
    assert len(ours) == 1
