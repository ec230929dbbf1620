"""Structured logging, configured once per process.

Library code logs events with fields — `logger.info("import.done",
extra={"rows": n})` — and this module decides how they look: one JSON object
a line in production (machines read it), `time level event key=value` on a
terminal (people read it).
"""

from __future__ import annotations

import json
import logging
import sys
from datetime import UTC, datetime
from typing import Any, TextIO

from services.settings import LogFormat

# Attributes every LogRecord has; anything else on a record came from `extra=`.
_STANDARD_ATTRS = frozenset(
    vars(logging.LogRecord("x", logging.INFO, "x", 0, "x", None, None)).keys()
) | {"message", "asctime", "taskName", "color_message"}  # uvicorn's ANSI copy of the message


# Attributes other libraries stamp on records for their own bookkeeping, not for readers:
# litellm's redaction filter marks every record it has scrubbed (`litellm_redacted`).
_FOREIGN_ATTRS = frozenset({"litellm_redacted"})


def record_fields(record: logging.LogRecord) -> dict[str, Any]:
    """The structured fields a caller attached with `extra=`; other libraries' markers left out."""
    return {
        k: v
        for k, v in vars(record).items()
        if k not in _STANDARD_ATTRS and k not in _FOREIGN_ATTRS and not _is_sentinel(v)
    }


def _is_sentinel(value: object) -> bool:
    """A bare `object()`: a marker compared by identity, which prints only as `<object object
    at 0x...>` and would ride on every line of a library that stamps one."""
    return type(value) is object


class JsonFormatter(logging.Formatter):
    """One JSON object per line: ts, level, logger, event, fields, exception."""

    def format(self, record: logging.LogRecord) -> str:
        doc: dict[str, Any] = {
            "ts": datetime.fromtimestamp(record.created, UTC).isoformat(),
            "level": record.levelname.lower(),
            "logger": record.name,
            "event": record.getMessage(),
            **record_fields(record),
        }
        if record.exc_info:
            doc["exception"] = self.formatException(record.exc_info)
        return json.dumps(doc, default=str)


class ConsoleFormatter(logging.Formatter):
    """`12:00:01 INFO  import.done rows=592358` — short enough to scan."""

    def format(self, record: logging.LogRecord) -> str:
        ts = datetime.fromtimestamp(record.created, UTC).strftime("%H:%M:%S")
        fields = " ".join(f"{k}={v}" for k, v in record_fields(record).items())
        line = f"{ts} {record.levelname:<5} {record.getMessage()}" + (
            f" {fields}" if fields else ""
        )
        if record.exc_info:
            line += "\n" + self.formatException(record.exc_info)
        return line


# Libraries that log every request at INFO (litellm: one line per model call, through a
# handler of its own): warnings and above only, through our handler.
CHATTY = ("LiteLLM", "LiteLLM Router", "LiteLLM Proxy", "httpx")


def configure_logging(level: str, fmt: LogFormat, stream: TextIO | None = None) -> None:
    """Install one handler on the root logger, replacing any earlier one of ours."""
    stream = stream or sys.stderr
    if fmt is LogFormat.AUTO:
        fmt = LogFormat.CONSOLE if stream.isatty() else LogFormat.JSON
    handler = logging.StreamHandler(stream)
    handler.setFormatter(JsonFormatter() if fmt is LogFormat.JSON else ConsoleFormatter())
    handler.set_name("aitrader")
    root = logging.getLogger()
    for existing in [h for h in root.handlers if h.get_name() == "aitrader"]:
        root.removeHandler(existing)
    root.addHandler(handler)
    root.setLevel(level)
    for name in CHATTY:
        chatty = logging.getLogger(name)
        chatty.setLevel(max(logging.WARNING, root.level))
        chatty.propagate = True
        for own in list(chatty.handlers):  # litellm adds a stderr handler of its own
            chatty.removeHandler(own)
