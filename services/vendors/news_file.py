"""Read a news archive (JSONL or CSV, optionally gzipped) into raw rows, one per item.

The layout (docs in README "News"): one item per JSON line or CSV row, with

* `id` (or `source_id`): the item's id, unique within its source;
* `headline`; optionally `summary` and `url`;
* `symbols`: a JSON list, or in CSV one string separated by `;`, `,` or spaces;
* `published_at`: ISO 8601 with an offset;
* optionally `received_at` (ISO 8601 with an offset): when it reached you. Without it
  an item is known from `published_at`, and the stored row says so;
* optionally `source` (default: the import's `--source`).

This module knows layouts, not validity: every row comes out with its line
number, and tasks/import_news.py validates and reports.
"""

from __future__ import annotations

import csv
import gzip
import io
import json
import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from models.errors import DataFileError
from services.vendors.paths import require_file

NEWS_SUFFIXES = (".jsonl", ".jsonl.gz", ".ndjson", ".ndjson.gz", ".csv", ".csv.gz")
_SPLIT = re.compile(r"[;,\s]+")


def read_news_file(path: Path, *, source: str) -> Iterator[tuple[int, dict[str, Any] | str]]:
    """(line, row) per item, the row as the fields `NewsRecord` takes, or a one-line reason
    the line could not be read at all (bad JSON)."""
    require_file(path, NEWS_SUFFIXES, kinds=".jsonl, .ndjson or .csv, each optionally .gz")
    name = path.name.lower()
    text = _text(path)
    if name.endswith((".jsonl", ".jsonl.gz", ".ndjson", ".ndjson.gz")):
        yield from _jsonl(text, source)
    else:
        yield from _csv(text, source, path)


def _text(path: Path) -> str:
    try:
        raw = path.read_bytes()
        if path.name.lower().endswith(".gz"):
            raw = gzip.decompress(raw)
        return raw.decode("utf-8-sig")
    except (OSError, EOFError, gzip.BadGzipFile, UnicodeDecodeError) as error:
        raise DataFileError(f"{path}: cannot read: {error}") from None


def _jsonl(text: str, source: str) -> Iterator[tuple[int, dict[str, Any] | str]]:
    for line, content in enumerate(text.splitlines(), start=1):
        if not content.strip():
            continue
        try:
            row = json.loads(content)
        except json.JSONDecodeError as error:
            yield line, f"not JSON: {error.msg} at column {error.colno}"
            continue
        if not isinstance(row, dict):
            yield line, f"not a JSON object but {type(row).__name__}"
            continue
        yield line, _normalised(row, source)


def _csv(text: str, source: str, path: Path) -> Iterator[tuple[int, dict[str, Any] | str]]:
    reader = csv.DictReader(io.StringIO(text))
    if not reader.fieldnames or not {"headline"} <= {f.strip().lower() for f in reader.fieldnames}:
        raise DataFileError(
            f"{path}: unknown layout, no headline column "
            f"(found: {', '.join(reader.fieldnames or []) or 'none'})"
        )
    for row in reader:
        clean = {str(k).strip().lower(): v for k, v in row.items() if k is not None}
        if isinstance(clean.get("symbols"), str):
            clean["symbols"] = [s for s in _SPLIT.split(clean["symbols"]) if s]
        yield reader.line_num, _normalised(clean, source)


def _normalised(row: dict[str, Any], source: str) -> dict[str, Any]:
    out = {k: (None if v == "" else v) for k, v in row.items()}
    if "source_id" not in out and "id" in out:
        out["source_id"] = out["id"]
    if out.get("source_id") is not None:
        out["source_id"] = str(out["source_id"])
    out["source"] = out.get("source") or source
    return out
