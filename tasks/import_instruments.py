"""Load instrument reference data (symbol plus any of name, exchange, sector) from a CSV."""

from __future__ import annotations

import re
from pathlib import Path

import pandas as pd
from sqlalchemy.orm import Session

from db.queries.instruments import REFERENCE_FIELDS, InstrumentCounts, upsert_reference
from models.errors import DataFileError
from models.market import SYMBOL_PATTERN
from services.vendors.paths import require_file


def import_instrument_file(session: Session, path: Path) -> InstrumentCounts:
    """Upsert instruments from `path`; rows with an invalid symbol are an error, not skipped.

    Reference files are small and hand-made, so a bad row more likely means a
    wrong file than noise worth skipping.
    """
    require_file(path)
    try:
        raw = pd.read_csv(path, dtype=str, keep_default_na=False)
    except (OSError, ValueError, pd.errors.ParserError, UnicodeDecodeError) as exc:
        raise DataFileError(f"{path}: cannot read: {exc}") from None
    raw.columns = [str(c).strip().lower() for c in raw.columns]
    if "symbol" not in raw.columns:
        raise DataFileError(f"{path}: no 'symbol' column (found: {', '.join(raw.columns)})")
    fields = [c for c in REFERENCE_FIELDS if c in raw.columns]
    rows: dict[str, dict[str, str | None]] = {}
    for line, record in enumerate(raw.to_dict("records"), start=2):
        symbol = str(record["symbol"]).strip().upper()
        if not re.fullmatch(SYMBOL_PATTERN, symbol):
            raise DataFileError(f"{path}:{line}: invalid symbol {record['symbol']!r}")
        rows[symbol] = {f: (str(record[f]).strip() or None) for f in fields}
    return upsert_reference(session, rows)
