"""The council backtest in full: 2018-2019, weekly, on the shared data, run twice.

    .venv/bin/python -m bench.council_backtest [--data ../shared/data/sp500_daily_2015_2020.csv.gz]
        [--universe 30] [--rebalance weekly] [--db sqlite:///data/bench-council-backtest.db]

The bars are loaded with the project's own importer (as `aitrader data import`
does), into a database of the bench's own. The first pass asks the models (the
offline analyst unless LLM_MODELS says otherwise); the second must answer every
prompt from the cache: 0 requests, $0, and the same metrics and trades. The
table shows the council beside buy-and-hold and momentum, and each pass's time
against the sittings' critical path (the sum of the sittings' own durations).
"""

from __future__ import annotations

import argparse
import asyncio
import os
import sys
import time
from datetime import date
from pathlib import Path
from typing import Any

DEFAULT_DATA = (
    Path(__file__).resolve().parents[2] / "shared" / "data" / "sp500_daily_2015_2020.csv.gz"
)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", type=Path, default=DEFAULT_DATA)
    parser.add_argument("--sectors", type=Path, default=DEFAULT_DATA.with_name("sp500_sectors.csv"))
    parser.add_argument("--db", default="sqlite:///data/bench-council-backtest.db")
    parser.add_argument("--universe", type=int, default=30, help="first N symbols by name; 0: all")
    parser.add_argument("--rebalance", choices=("weekly", "monthly"), default="weekly")
    parser.add_argument("--start", type=date.fromisoformat, default=date(2018, 1, 1))
    parser.add_argument("--end", type=date.fromisoformat, default=date(2019, 12, 31))
    parser.add_argument("--anonymise", action="store_true", help="sit each day anonymised too")
    parser.add_argument("--weighting", action="store_true", help="rank by skill-weighted votes")
    args = parser.parse_args()
    os.environ["DATABASE_URL"] = args.db
    os.environ.setdefault("LITELLM_LOCAL_MODEL_COST_MAP", "True")
    os.environ.setdefault("LOG_LEVEL", "WARNING")
    symbols = _load(args.db, args.data, args.sectors)
    universe = symbols[: args.universe] if args.universe else symbols
    from flows.council_backtest import council_backtest

    passes: list[dict[str, Any]] = []
    for k in (1, 2):
        started = time.perf_counter()

        async def sit() -> Any:
            return await council_backtest(
                start=args.start,
                end=args.end,
                universe=universe,
                rebalance=args.rebalance,
                anonymise=args.anonymise,
                weighting=args.weighting,
                return_state=True,
            )

        state = asyncio.run(sit())
        took = time.perf_counter() - started
        if not state.is_completed():
            print(f"pass {k} ended {state.type.value}: {state.message}", file=sys.stderr)
            return 1
        summary = state.result()
        summary["seconds"] = took
        passes.append(summary)
    _print(passes, len(universe))
    same = (
        passes[0]["metrics"] == passes[1]["metrics"] and passes[0]["trades"] == passes[1]["trades"]
    )
    print(f"\nidentical results: {same}; second pass requests {passes[1]['requests']}, "
          f"cost ${passes[1]['cost_usd']}")  # fmt: skip
    return 0 if same and passes[1]["requests"] == 0 else 1


def _load(url: str, data: Path, sectors: Path) -> list[str]:
    from db.engine import make_engine, make_session_factory, unit_of_work
    from db.migrate import upgrade
    from db.queries.bars import stored_symbols
    from tasks.import_bars import import_bar_file
    from tasks.import_instruments import import_instrument_file

    engine = make_engine(url)
    upgrade(engine)
    with make_session_factory(engine)() as session:
        stored = stored_symbols(session)
    if not stored:
        started = time.perf_counter()
        with unit_of_work(make_session_factory(engine)) as session:
            report = import_bar_file(session, data)
        print(f"imported {data.name} in {time.perf_counter() - started:.0f} s: {report}")
        with unit_of_work(make_session_factory(engine)) as session:
            print(f"sectors: {import_instrument_file(session, sectors)}")
        with make_session_factory(engine)() as session:
            stored = stored_symbols(session)
    engine.dispose()
    return sorted(stored)


def _print(passes: list[dict[str, Any]], universe: int) -> None:
    first = passes[0]
    print(f"\ncouncil backtest, {first['sittings']} sittings, universe {universe} symbols")
    names = ("total_return", "cagr", "sharpe", "max_drawdown", "trades", "open_trades")
    print(f"{'metric':<14}" + "".join(f"{b:>14}" for b in first["metrics"]))
    for name in names:
        cells = "".join(f"{_fmt(first['metrics'][b][name]):>14}" for b in first["metrics"])
        print(f"{name:<14}{cells}")
    print(f"refused orders: {first['refused']}")
    print(f"cutoff: {first['cutoff']['flagged_sittings']} of {first['sittings']} sittings flagged")
    for mode, stats in first["modes"].items():
        print(f"pitches ({mode}): {stats}")
    print(f"weighting: {first['weighting']}")
    for k, p in enumerate(passes, 1):
        print(
            f"pass {k}: {p['seconds']:.0f} s, requests {p['requests']}, cache hits "
            f"{p['cache_hits']}, cost ${p['cost_usd']}"
        )


def _fmt(value: Any) -> str:
    return f"{value:.4f}" if isinstance(value, float) else str(value)


if __name__ == "__main__":
    sys.exit(main())
