"""Setting up `bench/soak.py`'s world: a database with the sample, a private Redis, the
stack's environment, the client processes.

* The database: a Postgres database of the soak's own (created on the local server,
  dropped at the end) or a SQLite file in the output folder; migrated, with the bundled
  sample's instruments and daily bars imported as `aitrader demo` imports them, and a
  trader token for the drivers.
* Redis: a redis-server subprocess on a free port (tests/private_redis.py), so the
  soak's streams are the only ones there and its memory is the soak's alone.
"""

from __future__ import annotations

import multiprocessing
import resource
import shutil
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import date
from multiprocessing.connection import Connection
from multiprocessing.context import SpawnProcess
from pathlib import Path

from _soak_clients import ClientJob, run_clients
from sqlalchemy import create_engine, select, text

from db.engine import make_engine, make_session_factory, unit_of_work
from db.migrate import upgrade
from db.queries.tokens import issue_token
from models.enums import Role, Timeframe
from models.market import Bar
from tests.private_redis import PrivateRedis
from tests.replica_stack import Served

POSTGRES_ADMIN_URL = "postgresql+psycopg2://postgres@127.0.0.1:5432/postgres"
SAMPLE = Path(__file__).resolve().parent.parent / "data" / "sample"

ClientProcess = tuple[SpawnProcess, Connection]


@contextmanager
def database(sqlite: bool, out: Path) -> Iterator[str]:
    """An empty database's URL for the block; a Postgres one is dropped afterwards."""
    if sqlite:
        yield f"sqlite:///{out / 'soak.db'}"
        return
    admin = create_engine(POSTGRES_ADMIN_URL, isolation_level="AUTOCOMMIT")
    name = f"aitrader_soak_{uuid.uuid4().hex[:10]}"
    with admin.connect() as conn:
        conn.execute(text(f'CREATE DATABASE "{name}"'))
    try:
        yield admin.url.set(database=name).render_as_string(hide_password=False)
    finally:
        with admin.connect() as conn:
            conn.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
        admin.dispose()


@contextmanager
def private_redis() -> Iterator[PrivateRedis]:
    binary = shutil.which("redis-server")
    if binary is None:
        raise SystemExit("soak: redis-server is not on PATH")
    redis = PrivateRedis(binary)
    redis.start()
    try:
        yield redis
    finally:
        redis.stop()


def stack_environment(sim_interval_ms: int, out: Path) -> dict[str, str]:
    """What the soak sets beyond tests/replica_stack.py's environment."""
    return {
        "CHAT_EXECUTE": "true",
        "API_LLM_RATE_PER_MINUTE": "10000",
        "SIM_INTERVAL_MS": str(sim_interval_ms),
        "BACKTEST_PLOT_DIR": str(out / "plots"),
        "MODEL_DIR": str(out / "models"),
    }


def prepare(url: str) -> tuple[str, list[date]]:
    """Migrate, import the bundled sample as `aitrader demo` does, issue a trader token;
    the weeks to sit councils for (the last stored day of each week, newest first)."""
    from tasks.import_bars import import_bar_file
    from tasks.import_instruments import import_instrument_file

    engine = make_engine(url)
    try:
        upgrade(engine)
        sessions = make_session_factory(engine)
        with unit_of_work(sessions) as session:
            import_instrument_file(session, SAMPLE / "sp500_sectors_sample.csv")
            import_bar_file(session, SAMPLE / "sp500_daily_sample.csv.gz", timeframe=Timeframe.D1)
        with unit_of_work(sessions) as session:
            token = issue_token(session, "soak", Role.TRADER, name="soak").secret
            days = session.scalars(
                select(Bar.ts).where(Bar.symbol == "AAPL").order_by(Bar.ts.desc()).limit(2000)
            ).all()
    finally:
        engine.dispose()
    weeks: dict[tuple[int, int], date] = {}
    for ts in days:
        weeks.setdefault(ts.date().isocalendar()[:2], ts.date())
    return token, list(weeks.values())


@contextmanager
def client_processes(
    replicas: dict[str, Served], sse: int, ws: int
) -> Iterator[list[ClientProcess]]:
    """One client process per replica, holding its half of the SSE and WS clients."""
    context = multiprocessing.get_context("spawn")
    started: list[ClientProcess] = []
    try:
        for i, (name, served) in enumerate(replicas.items()):
            odd = i == 0  # the first replica takes an odd client
            job = ClientJob(name, served.port, sse // 2 + sse % 2 * odd, ws // 2 + ws % 2 * odd)
            parent, child = context.Pipe()
            process = context.Process(target=run_clients, args=(job, child), daemon=True)
            process.start()
            started.append((process, parent))
        yield started
    finally:
        for process, _ in started:
            process.join(timeout=15)
            if process.is_alive():
                process.kill()
                process.join()


def raise_fd_limit() -> None:
    """Soft fd limit up to the hard one; the servers and clients inherit it."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if hard != resource.RLIM_INFINITY and soft < hard:
        resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
