"""The write rule (docs/decisions/0014), on SQLite and Postgres: writers queue instead of
failing, reads cannot write, conflicts are retried, and an import shares the database."""

from __future__ import annotations

import threading
import time

import pytest
from sqlalchemy import Engine, func, select, text
from sqlalchemy.orm import Session, sessionmaker

from db.engine import (
    ReadOnlySessionError,
    make_engine,
    make_read_session_factory,
    make_session_factory,
    transaction,
    unit_of_work,
)
from db.migrate import upgrade
from db.queries.tokens import ensure_user
from models.market import Bar
from models.users import User
from tasks.import_bars import import_bar_file_beside_writers
from tests.conftest import SAMPLE_DATA


def test_a_read_session_refuses_to_write(sessions: sessionmaker[Session]) -> None:
    reads = make_read_session_factory(sessions.kw["bind"])
    with reads() as session:
        session.add(User(username="nobody"))
        with pytest.raises(ReadOnlySessionError, match="use a write session"):
            session.flush()
    with sessions() as session:
        assert session.scalar(select(func.count()).select_from(User)) == 0


def test_writers_that_read_first_queue_instead_of_failing(
    sessions: sessionmaker[Session],
) -> None:
    """Eight threads each read the count, then write: on SQLite a deferred transaction would
    fail its upgrade ("database is locked") as soon as another committed in between."""
    errors: list[BaseException] = []

    def writer(i: int) -> None:
        try:
            for j in range(10):
                with unit_of_work(sessions) as session:
                    session.scalar(select(func.count()).select_from(User))
                    time.sleep(0.002)  # another writer commits meanwhile
                    ensure_user(session, f"user-{i}-{j}")
        except BaseException as exc:
            errors.append(exc)

    threads = [threading.Thread(target=writer, args=(i,)) for i in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert errors == []
    with sessions() as session:
        assert session.scalar(select(func.count()).select_from(User)) == 80


@pytest.mark.postgres
def test_a_deadlock_on_postgres_is_retried_as_a_whole(postgres_url: str) -> None:
    engine = make_engine(postgres_url)
    upgrade(engine)
    sessions = make_session_factory(engine)
    with unit_of_work(sessions) as session:
        a, b = ensure_user(session, "dl-a"), ensure_user(session, "dl-b")
        ids = (a.id, b.id)
    barrier = threading.Barrier(2)
    runs: list[str] = []
    errors: list[BaseException] = []

    def work(first: int, second: int, name: str) -> None:
        def locks(session: Session) -> None:
            runs.append(name)
            session.execute(
                text("UPDATE users SET is_admin = NOT is_admin WHERE id = :i"), {"i": first}
            )
            if len(runs) <= 2:
                barrier.wait(timeout=10)  # both hold their first row: now cross
            session.execute(
                text("UPDATE users SET is_admin = NOT is_admin WHERE id = :i"), {"i": second}
            )

        try:
            transaction(sessions, locks)
        except BaseException as exc:
            errors.append(exc)

    threads = [
        threading.Thread(target=work, args=(ids[0], ids[1], "x")),
        threading.Thread(target=work, args=(ids[1], ids[0], "y")),
    ]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    engine.dispose()
    assert errors == []
    assert len(runs) == 3  # one of the two was chosen as the deadlock victim, and re-ran


def test_an_interrupted_import_leaves_whole_symbols_and_a_rerun_finishes_it(
    migrated_db_url: str,
) -> None:
    engine = make_engine(migrated_db_url)
    upgrade(engine)
    sample = SAMPLE_DATA / "sp500_daily_sample.csv.gz"
    calls = {"n": 0}

    def stop_after_first_merge(stage: str, done: int, total: int) -> None:
        if stage == "writing":
            calls["n"] += 1
            if calls["n"] == 1:
                raise KeyboardInterrupt

    import tasks.import_bars as importer

    original = importer.SYMBOLS_PER_MERGE
    importer.SYMBOLS_PER_MERGE = 5
    try:
        with pytest.raises(KeyboardInterrupt):
            import_bar_file_beside_writers(engine, sample, progress=stop_after_first_merge)
        partial = _counts_by_symbol(engine)
        assert len(partial) == 5  # the first batch of symbols, each whole
        full = import_bar_file_beside_writers(engine, sample)
    finally:
        importer.SYMBOLS_PER_MERGE = original
    counts = _counts_by_symbol(engine)
    for symbol, n in partial.items():
        assert counts[symbol] == n  # landed whole the first time
    assert full.unchanged == sum(partial.values())
    assert full.inserted == sum(counts.values()) - sum(partial.values())
    engine.dispose()


def _counts_by_symbol(engine: Engine) -> dict[str, int]:
    with make_session_factory(engine)() as session:
        rows = session.execute(select(Bar.symbol, func.count()).group_by(Bar.symbol)).all()
    return {symbol: n for symbol, n in rows}
