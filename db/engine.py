"""Engines and sessions for SQLite and Postgres, and the rule every writer follows.

The rule (docs/decisions/0014): a transaction that may write says so when it
begins, stays short, and never spans slow work (an LLM call, a broker call,
reading a file, a backtest). On SQLite that is what makes writers *wait*
instead of failing:

* Sessions from `make_session_factory` begin with `BEGIN IMMEDIATE`: they
  take SQLite's write lock up front, queueing behind another writer for up
  to `SQLITE_BUSY_TIMEOUT_S`. A deferred transaction that reads and then
  writes cannot wait: if another writer committed in between, SQLite fails
  its upgrade at once with "database is locked", whatever the busy timeout.
* Sessions from `make_read_session_factory` begin deferred (readers never
  block writers in WAL mode) and refuse to flush: a read path that starts
  writing is a bug, and it fails loudly in tests rather than under load.

On Postgres `BEGIN` is plain (row locks do the queueing); the deadlocks and
serialization failures it can still report are retried by `transaction()`,
which re-runs a whole unit of work, so only pure database work may go in it.

SQLite also needs pysqlite's own transaction handling switched off so
SQLAlchemy's BEGIN, SAVEPOINT and transactional DDL work as written, and
foreign keys turned on (SQLite ignores them by default). WAL lets the
realtime process read while a flow writes.
"""

from __future__ import annotations

import logging
import random
import time
import traceback
import weakref
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any, TypeVar

from sqlalchemy import Connection, Engine, create_engine, event, text
from sqlalchemy.engine import make_url
from sqlalchemy.exc import DBAPIError, OperationalError
from sqlalchemy.orm import Session, sessionmaker

import models.tables  # noqa: F401 (every table registered before any session flushes)
from models.errors import DatabaseUnavailableError

logger = logging.getLogger(__name__)

SQLITE_BUSY_TIMEOUT_S = 60.0
"""How long a SQLite writer queues for the write lock before "database is locked"."""
LONG_WRITE_S = 2.0
"""A SQLite write transaction held longer than this is logged (`db.long_write`) with where
it ended: every writer in every process waits that long behind it."""
RETRY_ATTEMPTS = 5
_READER = "aitrader_reader"
_RETRYABLE_PG = frozenset({"40001", "40P01"})  # serialization_failure, deadlock_detected
T = TypeVar("T")
_READS_OF: weakref.WeakKeyDictionary[sessionmaker[Session], sessionmaker[Session]] = (
    weakref.WeakKeyDictionary()
)  # a cache, not state: each write factory's read twin, gone with it


class ReadOnlySessionError(RuntimeError):
    """A session made for reading was asked to write: the caller should use a write session."""


def make_engine(url: str, *, echo: bool = False) -> Engine:
    """Create an engine for `url` (already normalised by `Settings`)."""
    parsed = make_url(url)
    if parsed.get_backend_name() != "sqlite":
        return create_engine(url, echo=echo, pool_pre_ping=True, future=True)
    database = parsed.database
    if database and database != ":memory:" and not database.startswith("file:"):
        Path(database).parent.mkdir(parents=True, exist_ok=True)
    # `?timeout=S` in the URL sets another wait (tests make locks fail fast with it).
    waits = {} if "timeout" in parsed.query else {"timeout": SQLITE_BUSY_TIMEOUT_S}
    engine = create_engine(url, echo=echo, connect_args=waits)
    event.listen(engine, "connect", _sqlite_on_connect)
    event.listen(engine, "begin", _sqlite_on_begin)
    event.listen(engine, "commit", _sqlite_on_end)
    event.listen(engine, "rollback", _sqlite_on_end)
    return engine


def make_session_factory(engine: Engine) -> sessionmaker[Session]:
    """Sessions that may write: on SQLite each transaction takes the write lock as it begins."""
    return sessionmaker(engine, expire_on_commit=False)


def make_read_session_factory(engine: Engine) -> sessionmaker[Session]:
    """Sessions for reading only: deferred BEGIN on SQLite; a flush raises
    `ReadOnlySessionError`."""
    factory = sessionmaker(engine.execution_options(**{_READER: True}), expire_on_commit=False)
    event.listen(factory, "before_flush", _refuse_flush)
    return factory


def read_sessions_of(factory: sessionmaker[Session]) -> sessionmaker[Session]:
    """Read-only sessions on the engine behind `factory` (made once per factory)."""
    reads = _READS_OF.get(factory)
    if reads is None:
        reads = _READS_OF[factory] = make_read_session_factory(factory.kw["bind"])
    return reads


@contextmanager
def unit_of_work(factory: sessionmaker[Session]) -> Iterator[Session]:
    """A session that commits if the block succeeds and rolls back if it raises."""
    with factory() as session, session.begin():
        yield session


@contextmanager
def read_transaction(conn: Connection) -> Iterator[Connection]:
    """A transaction on `conn` that begins deferred on SQLite: for reads, and for writes
    to the connection's own temporary tables, which take no lock on the database."""
    conn.execution_options(**{_READER: True})
    try:
        with conn.begin():
            yield conn
    finally:
        conn.execution_options(**{_READER: False})


@contextmanager
def write_transaction(conn: Connection) -> Iterator[Connection]:
    """A write transaction on `conn` (BEGIN IMMEDIATE on SQLite): commits or rolls back."""
    with conn.begin():
        yield conn


def transaction(
    factory: sessionmaker[Session],
    work: Callable[[Session], T],
    *,
    attempts: int = RETRY_ATTEMPTS,
) -> T:
    """Run `work` in a unit of work; re-run it on a deadlock, a serialization failure or a
    SQLite writer that waited out its busy timeout. `work` must do database work only:
    it may run more than once, and only its last run's writes are kept."""
    for attempt in range(1, attempts + 1):
        try:
            with unit_of_work(factory) as session:
                return work(session)
        except DBAPIError as exc:
            if attempt == attempts or not is_retryable(exc):
                raise
            delay = min(0.05 * 2**attempt, 2.0) * (0.5 + random.random())  # noqa: S311
            logger.warning(
                "db.retry", extra={"attempt": attempt, "reason": _first_line(exc), "delay": delay}
            )
            time.sleep(delay)
    raise AssertionError("unreachable")  # pragma: no cover


def is_retryable(exc: BaseException) -> bool:
    """A transient conflict between transactions: the same work may succeed if run again."""
    if not isinstance(exc, DBAPIError):
        return False
    code = getattr(exc.orig, "pgcode", None)
    if code in _RETRYABLE_PG:
        return True
    message = str(exc.orig).lower()
    return "database is locked" in message or "database table is locked" in message


def check_connection(engine: Engine) -> None:
    """Connect once, so a bad URL fails here with a clear message and not mid-import."""
    try:
        with engine.connect() as conn:
            conn.execute(text("SELECT 1"))
    except OperationalError as exc:
        where = engine.url.render_as_string(hide_password=True)
        reason = str(exc.orig).strip().splitlines()[0] if exc.orig else str(exc)
        raise DatabaseUnavailableError(f"cannot connect to {where}: {reason}") from None


def _sqlite_on_connect(dbapi_connection: Any, _record: Any) -> None:
    dbapi_connection.isolation_level = None  # SQLAlchemy emits BEGIN itself (see _on_begin)
    cursor = dbapi_connection.cursor()
    cursor.execute("PRAGMA foreign_keys=ON")
    cursor.execute("PRAGMA journal_mode=WAL")
    cursor.execute("PRAGMA synchronous=NORMAL")
    cursor.close()


def _sqlite_on_begin(conn: Any) -> None:
    reader = conn.get_execution_options().get(_READER, False)
    conn.exec_driver_sql("BEGIN" if reader else "BEGIN IMMEDIATE")
    if not reader:
        conn.info["aitrader_began"] = time.monotonic()


def _sqlite_on_end(conn: Any) -> None:
    began = conn.info.pop("aitrader_began", None)
    if began is None:
        return
    held = time.monotonic() - began
    if held > LONG_WRITE_S:
        where = "; ".join(
            f"{f.filename.rsplit('/', 2)[-2:][-1]}:{f.lineno} {f.name}"
            for f in traceback.extract_stack(limit=40)
            if "/site-packages/" not in f.filename and not f.filename.endswith("engine.py")
        )
        logger.warning("db.long_write", extra={"seconds": round(held, 3), "where": where[-600:]})


def _refuse_flush(session: Session, _context: Any, _instances: Any) -> None:
    if session.new or session.dirty or session.deleted:
        raise ReadOnlySessionError(
            "a read-only session was asked to write: use a write session (unit_of_work)"
        )


def _first_line(exc: BaseException) -> str:
    orig = getattr(exc, "orig", None)
    return (str(orig or exc).strip().splitlines() or [""])[0]
