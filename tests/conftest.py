"""Test resources: databases on SQLite and Postgres, a loopback-only network.

Postgres is used when reachable on 127.0.0.1:5432; each test session (each
xdist worker) creates its own uniquely named database and drops it at the
end. When it is unreachable its tests are skipped with the reason, except
under CI=true, where the run fails: CI must not pass by skipping.
"""

from __future__ import annotations

import contextlib
import ipaddress
import json
import logging
import os
import queue
import resource
import shutil
import socket
import tempfile
import threading
import time
import uuid
from collections.abc import Callable, Generator, Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Any
from unittest import mock

import pytest
from sqlalchemy import Engine, create_engine, text
from sqlalchemy.exc import OperationalError
from sqlalchemy.orm import Session, sessionmaker
from typer.testing import CliRunner

from db.engine import make_engine, make_session_factory, unit_of_work
from db.migrate import upgrade

if TYPE_CHECKING:
    from tests.api_support import Api
    from tests.fake_openai import FakeOpenAI
    from tests.private_redis import PrivateRedis

pytest_plugins = ("tests.worker_heap", "tests.browser_support")

os.environ.setdefault("PREFECT_HOME", tempfile.mkdtemp(prefix="aitrader-prefect-"))
os.environ.setdefault("PREFECT_SERVER_ANALYTICS_ENABLED", "false")
os.environ.setdefault("LITELLM_LOCAL_MODEL_COST_MAP", "True")

POSTGRES_ADMIN_URL = os.environ.get(
    "TEST_POSTGRES_ADMIN_URL", "postgresql+psycopg2://postgres@127.0.0.1:5432/postgres"
)
IN_CI = os.environ.get("CI", "").lower() in {"1", "true", "yes"}
REPO = Path(__file__).resolve().parent.parent
SHARED_DATA = REPO.parent / "shared" / "data"
SAMPLE_DATA = REPO / "data" / "sample"


# --- network: loopback only ---------------------------------------------------

_real_connect = socket.socket.connect


def _loopback_only(self: socket.socket, address: object) -> object:
    if self.family in (socket.AF_INET, socket.AF_INET6) and isinstance(address, tuple):
        host = str(address[0])
        try:
            allowed = ipaddress.ip_address(host).is_loopback
        except ValueError:
            allowed = host == "localhost"
        if not allowed:
            raise ConnectionRefusedError(f"tests may only reach loopback, not {host}")
    return _real_connect(self, address)  # type: ignore[arg-type]


@pytest.fixture(autouse=True)
def _refuse_real_network(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(socket.socket, "connect", _loopback_only)


@pytest.fixture(autouse=True)
def _paper_state_in_tmp(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    """Paper brokers opened through settings keep their state under the test's tmp dir."""
    monkeypatch.setenv("PAPER_STATE_DIR", str(tmp_path / "paper"))


# --- Postgres -----------------------------------------------------------------


def _service_missing(what: str, reason: str) -> None:
    message = f"{what} unreachable: {reason}"
    if IN_CI:
        pytest.fail(f"{message} (CI=true: services are required, not optional)", pytrace=False)
    pytest.skip(message)


@pytest.fixture
def redis_up() -> None:
    """Redis at 127.0.0.1:6379 answers, or the test is skipped (fails under CI=true)."""
    import redis

    try:
        redis.Redis.from_url("redis://127.0.0.1:6379/0", socket_connect_timeout=1).ping()
    except redis.ConnectionError as exc:
        _service_missing("Redis at redis://127.0.0.1:6379/0", str(exc))


@pytest.fixture(scope="session")
def postgres_admin() -> Iterator[Engine]:
    engine = create_engine(POSTGRES_ADMIN_URL, isolation_level="AUTOCOMMIT")
    try:
        with engine.connect() as conn:
            conn.execute(text("SELECT 1"))
    except OperationalError as exc:
        engine.dispose()
        where = engine.url.render_as_string(hide_password=True)
        _service_missing(f"Postgres at {where}", str(exc.orig).strip().splitlines()[0])
    yield engine
    _dropper.join()
    engine.dispose()


def create_postgres_database(admin: Engine, template: str | None = None) -> str:
    name = f"aitrader_test_{uuid.uuid4().hex[:12]}"
    like = f' TEMPLATE "{template.rsplit("/", 1)[-1]}"' if template else ""
    with admin.connect() as conn:
        conn.execute(text(f'CREATE DATABASE "{name}"{like}'))
    return admin.url.set(database=name).render_as_string(hide_password=False)


def drop_postgres_database(admin: Engine, url: str) -> None:
    name = url.rsplit("/", 1)[-1]
    with admin.connect() as conn:
        conn.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))


class _Dropper:
    """Drops test databases on a thread of its own: DROP DATABASE waits for a checkpoint
    (~1 s on a busy machine), which no test needs to wait for. `join` at the session's end."""

    def __init__(self) -> None:
        self._queue: queue.SimpleQueue[tuple[Engine, str] | None] = queue.SimpleQueue()
        self._thread: threading.Thread | None = None

    def drop(self, admin: Engine, url: str) -> None:
        if self._thread is None:
            self._thread = threading.Thread(target=self._run, name="drop-test-dbs", daemon=True)
            self._thread.start()
        self._queue.put((admin, url))

    def join(self) -> None:
        if self._thread is not None:
            self._queue.put(None)
            self._thread.join()
            self._thread = None

    def _run(self) -> None:
        while (item := self._queue.get()) is not None:
            with contextlib.suppress(Exception):  # a leftover database is harmless, not a failure
                drop_postgres_database(*item)


_dropper = _Dropper()


def drop_later(admin: Engine, url: str) -> None:
    """Drop a test database without waiting for it."""
    _dropper.drop(admin, url)


@pytest.fixture(scope="session")
def postgres_url(postgres_admin: Engine) -> Iterator[str]:
    """A database created for this test session, dropped at its end."""
    url = create_postgres_database(postgres_admin)
    yield url
    drop_postgres_database(postgres_admin, url)


BACKENDS = ["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)]


@pytest.fixture(scope="session")
def _engines() -> Iterator[dict[str, Engine]]:
    """`db_engine`'s databases by backend, kept for the session (as `_templates` is)."""
    engines: dict[str, Engine] = {}
    yield engines
    for engine in engines.values():
        engine.dispose()


@pytest.fixture(scope="session", params=BACKENDS)
def db_engine(
    request: pytest.FixtureRequest,
    tmp_path_factory: pytest.TempPathFactory,
    _engines: dict[str, Engine],
) -> Engine:
    """A migrated database, shared by the session; tests isolate through `session`."""
    if request.param not in _engines:
        if request.param == "sqlite":
            url = f"sqlite:///{tmp_path_factory.mktemp('sqlite')}/test.db"
        else:
            url = request.getfixturevalue("postgres_url")
        engine = make_engine(url)
        upgrade(engine)
        _engines[request.param] = engine
    return _engines[request.param]


@pytest.fixture
def session(db_engine: Engine) -> Iterator[Session]:
    """A session whose work is rolled back after the test, even if the code under test commits."""
    with db_engine.connect() as conn:
        outer = conn.begin()
        s = Session(bind=conn, join_transaction_mode="create_savepoint", expire_on_commit=False)
        try:
            yield s
        finally:
            s.close()
            outer.rollback()


@pytest.fixture
def anyio_backend() -> str:
    """Async tests (`pytest.mark.anyio`) run on asyncio, the loop the product runs on."""
    return "asyncio"


@pytest.fixture
def sessions(migrated_db_url: str) -> Iterator[sessionmaker[Session]]:
    """A session factory on a freshly migrated database of each backend."""
    engine = make_engine(migrated_db_url)
    yield make_session_factory(engine)
    engine.dispose()


@pytest.fixture(params=BACKENDS)
def fresh_db_url(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[str]:
    """The URL of a brand-new, empty database, for code that opens its own connections."""
    if request.param == "sqlite":
        yield f"sqlite:///{tmp_path}/fresh.db"
        return
    admin = request.getfixturevalue("postgres_admin")
    url = create_postgres_database(admin)
    yield url
    drop_later(admin, url)


@pytest.fixture(scope="session", params=BACKENDS)
def migrated_template(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[str]:
    """An empty database at the migration head, built once per session and backend."""
    yield from _template(request, tmp_path_factory, with_sample=False)


@pytest.fixture
def migrated_db_url(
    migrated_template: str, request: pytest.FixtureRequest, tmp_path: Path
) -> Iterator[str]:
    """A database of this test's own at the migration head, copied from the template."""
    yield from _copy(migrated_template, request, tmp_path)


@pytest.fixture(scope="session")
def shared_daily_file() -> Path:
    path = SHARED_DATA / "sp500_daily_2015_2020.csv.gz"
    if not path.exists():
        pytest.skip(f"{path} not present (shared data lives beside the checkout)")
    return path


@pytest.fixture(scope="session")
def prefect_db_template(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A Prefect database at its migration head (tests/prefect_template.py), one per run."""
    from tests.prefect_template import build_template
    from tests.run_cache import run_dir

    return build_template(run_dir(tmp_path_factory))


@pytest.fixture
def seeded_prefect_home(prefect_db_template: Path, tmp_path: Path) -> Path:
    """A Prefect home of the test's own whose database is already migrated."""
    from tests.prefect_template import seed_home

    return seed_home(tmp_path / "prefect", prefect_db_template)


@pytest.fixture(scope="session")
def prefect_harness(prefect_db_template: Path) -> Iterator[None]:
    """One temporary Prefect server per test process, shared by every flow test.

    Prefect's own `prefect_test_harness`, started on a copy of the migrated
    template: the harness makes its database in a fresh temporary directory,
    and the copy is put there before its server opens it (~3 s to start, not ~8).
    """
    import prefect.testing.utilities as harness

    from tests.prefect_template import seed_home

    def seeded_temp_dir() -> str:
        where = tempfile.mkdtemp(prefix="aitrader-prefect-harness-")
        seed_home(Path(where), prefect_db_template, name="prefect-test.db")
        return where

    with contextlib.ExitStack() as running:
        with mock.patch.object(harness, "mkdtemp", seeded_temp_dir):
            running.enter_context(harness.prefect_test_harness(server_startup_timeout=60))
        yield


@pytest.fixture
def priced_llm(monkeypatch: pytest.MonkeyPatch) -> Iterator[FakeOpenAI]:
    """A priced model (the fake OpenAI server) answering as the offline analyst would, from
    each prompt: the real litellm path with real costs, for flows that need both."""
    from services.llm.offline import answer_council_prompt
    from services.settings import get_settings
    from tests.fake_openai import Responder, fake_openai

    def answer(body: dict[str, Any]) -> str:
        return answer_council_prompt("offline/analyst", body["messages"])

    with fake_openai(default=Responder(answer)) as server:
        monkeypatch.setenv("LLM_API_BASE", server.base_url)
        monkeypatch.setenv("LLM_API_KEY", "test-key")
        get_settings.cache_clear()
        yield server
    get_settings.cache_clear()


@pytest.fixture
def flow_db(
    sample_db_url: str, monkeypatch: pytest.MonkeyPatch, prefect_harness: None
) -> Iterator[Engine]:
    """A database holding the sample bars that flows find through settings (DATABASE_URL),
    under the worker's Prefect server."""
    from db.engine import make_engine
    from services.settings import get_settings

    engine = make_engine(sample_db_url)
    monkeypatch.setenv("DATABASE_URL", sample_db_url)
    get_settings.cache_clear()
    yield engine
    get_settings.cache_clear()
    engine.dispose()


# --- the aitrader command, in-process, on a database holding the sample bars -------

Run = Callable[..., tuple[int, str]]


@pytest.fixture
def sample_db(sample_db_url: str, monkeypatch: pytest.MonkeyPatch, prefect_harness: None) -> str:
    """A migrated database with the sample bars; the flow finds it through DATABASE_URL."""
    monkeypatch.setenv("DATABASE_URL", sample_db_url)
    monkeypatch.setenv("LOG_LEVEL", "WARNING")
    return sample_db_url


@pytest.fixture
def aitrader(sample_db: str, monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> Iterator[Run]:
    """Run `aitrader ...` in-process; returns (exit code, stdout and stderr)."""
    from cli.main import app
    from services.settings import get_settings

    monkeypatch.chdir(tmp_path)
    get_settings.cache_clear()  # the flow reads settings through the cached getter
    runner = CliRunner()

    def run(*args: str) -> tuple[int, str]:
        result = runner.invoke(app, list(args))
        # The command's log handler writes to the runner's stream, closed now; later records
        # (the harness, flow threads) would report "I/O operation on closed file".
        root = logging.getLogger()
        for handler in [h for h in root.handlers if h.get_name() == "aitrader"]:
            root.removeHandler(handler)
        return result.exit_code, result.output

    yield run
    get_settings.cache_clear()


# --- the REST API on a copy of a database holding the sample bars -----------------


@pytest.fixture(scope="session")
def _templates() -> Iterator[dict[tuple[str, bool], str]]:
    """Template databases by (backend, with the sample), built once per worker and kept
    until the session ends. The fixtures that hand them out are parametrized by backend,
    and pytest tears a session fixture down whenever the next test wants the other
    parameter: with tests interleaved across workers, that rebuilt (migrated, imported)
    the same template again and again."""
    built: dict[tuple[str, bool], str] = {}
    yield built
    postgres = [url for (backend, _), url in built.items() if backend == "postgres"]
    if postgres:
        admin = create_engine(POSTGRES_ADMIN_URL, isolation_level="AUTOCOMMIT")
        for url in postgres:
            with contextlib.suppress(Exception):  # a leftover database is harmless
                drop_postgres_database(admin, url)
        admin.dispose()


def _template(
    request: pytest.FixtureRequest, factory: pytest.TempPathFactory, *, with_sample: bool
) -> Iterator[str]:
    templates: dict[tuple[str, bool], str] = request.getfixturevalue("_templates")
    key = (request.param, with_sample)
    if key not in templates:
        templates[key] = _build_template(request, factory, with_sample=with_sample)
    yield templates[key]


def _build_template(
    request: pytest.FixtureRequest, factory: pytest.TempPathFactory, *, with_sample: bool
) -> str:
    from tasks.import_bars import import_bar_file

    if request.param == "sqlite":
        url = f"sqlite:///{factory.mktemp('template')}/template.db"
    else:
        url = create_postgres_database(request.getfixturevalue("postgres_admin"))
    engine = make_engine(url)
    upgrade(engine)
    if with_sample:
        with unit_of_work(make_session_factory(engine)) as session:
            import_bar_file(session, SAMPLE_DATA / "sp500_daily_sample.csv.gz")
    engine.dispose()
    return url


def _copy(template: str, request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[str]:
    """A copy of a template database, the test's own: a file copy, or CREATE ... TEMPLATE
    (a few ms, where migrating takes ~1 s and importing the sample ~2 s)."""
    if template.startswith("sqlite"):
        target = tmp_path / f"copy-{uuid.uuid4().hex[:8]}.db"
        shutil.copyfile(template.removeprefix("sqlite:///"), target)
        yield f"sqlite:///{target}"
        return
    admin: Engine = request.getfixturevalue("postgres_admin")
    url = create_postgres_database(admin, template=template)
    yield url
    drop_later(admin, url)


@pytest.fixture(scope="session", params=BACKENDS)
def api_template(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[str]:
    """A migrated database with the sample bars, built once per session and backend."""
    yield from _template(request, tmp_path_factory, with_sample=True)


@pytest.fixture
def sample_db_url(
    api_template: str, request: pytest.FixtureRequest, tmp_path: Path
) -> Iterator[str]:
    """A database of this test's own holding the sample bars, copied from the template."""
    yield from _copy(api_template, request, tmp_path)


@pytest.fixture
def api_db_url(sample_db_url: str) -> str:
    """The REST API tests' database: a copy of the sample template."""
    return sample_db_url


@pytest.fixture
def api(api_db_url: str, monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> Iterator[Api]:
    """The app on its own copy of the sample database; `api.get(path, role=...)`."""
    from tests.api_support import api_settings, running_api

    monkeypatch.chdir(tmp_path)
    with running_api(api_settings(api_db_url)) as client:
        yield client


# --- a database as `make demo` leaves it, for the whole-stack tests -------------------


@pytest.fixture
def stack_db(api_template: str, sample_db_url: str) -> tuple[str, str]:
    """A migrated database holding the sample bars, as `make demo` leaves one."""
    return ("sqlite" if api_template.startswith("sqlite") else "postgres"), sample_db_url


# --- a Redis of the test's own, for outages ---------------------------------------------


@pytest.fixture
def redis_server() -> Iterator[PrivateRedis]:
    """A private redis-server the test may stop and restart (skipped, or failed under CI,
    without the binary)."""
    from tests.private_redis import PrivateRedis

    binary = shutil.which("redis-server")
    if binary is None:
        message = "redis-server not on PATH"
        if IN_CI:
            pytest.fail(f"{message} (CI=true: services are required, not optional)")
        pytest.skip(message)
    server = PrivateRedis(binary)
    server.start()
    try:
        yield server
    finally:
        server.stop()


# --- where the suite's time goes ------------------------------------------------------

RUN_FIRST = (
    "tests/test_concurrent_stack.py",
    "tests/test_readme.py",
    "tests/test_execution_chaos.py",
    "tests/test_backtest_parity.py",
    "tests/test_api_fuzz.py",
    "tests/test_replicas.py",
    "tests/test_prefect_startup.py",
    "tests/test_prefect_home.py",
    "tests/test_up_stack.py",
    "tests/test_import_bars.py",
    "tests/test_prefect_cli.py",
)
"""Modules whose single tests take 15-65 s each (longest first). make test hands tests to
its two workers in collection order; started last, a 50 s test kept one worker busy for a
minute while the other had finished (the longest-first rule of scheduling)."""


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    rank = {module: i for i, module in enumerate(RUN_FIRST)}
    items.sort(key=lambda item: rank.get(item.nodeid.split("::", 1)[0], len(rank)))


def _cpu_seconds() -> float:
    """This process's CPU time and that of the children it has waited for (servers and
    commands a test started and stopped), user and system."""
    own, children = (
        resource.getrusage(resource.RUSAGE_SELF),
        resource.getrusage(resource.RUSAGE_CHILDREN),
    )
    return own.ru_utime + own.ru_stime + children.ru_utime + children.ru_stime


_cpu_mark = [0.0]


def pytest_runtest_logstart(nodeid: str, location: object) -> None:
    if os.environ.get("TEST_TIMES_DIR"):
        _cpu_mark[0] = _cpu_seconds()


@pytest.hookimpl(wrapper=True)
def pytest_runtest_makereport(
    item: pytest.Item, call: pytest.CallInfo[None]
) -> Generator[None, pytest.TestReport, pytest.TestReport]:
    """With TEST_TIMES_DIR set, each phase's report carries the CPU seconds it took."""
    report = yield
    if os.environ.get("TEST_TIMES_DIR"):
        now = _cpu_seconds()
        report.user_properties.append(("cpu", now - _cpu_mark[0]))
        _cpu_mark[0] = now
    return report


def pytest_runtest_logreport(report: pytest.TestReport) -> None:
    """With TEST_TIMES_DIR set, each phase of each test appends a line to DIR/times.jsonl as
    it ends (the xdist controller writes them all, so a crashed worker's times are kept);
    `python -m tests.times DIR` sums them per module."""
    where = os.environ.get("TEST_TIMES_DIR")
    if not where or os.environ.get("PYTEST_XDIST_WORKER"):
        return
    line = {"id": report.nodeid, "when": report.when, "s": report.duration, "out": report.outcome}
    line["cpu"] = dict(report.user_properties).get("cpu")
    line["at"] = time.time()  # when it ended: how the workers' loads lined up
    line["worker"] = getattr(report, "node", None) and report.node.gateway.id
    Path(where).mkdir(parents=True, exist_ok=True)
    with (Path(where) / "times.jsonl").open("a") as out:
        out.write(json.dumps(line) + "\n")


@pytest.fixture(scope="session")
def tiny_model(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A tiny BERT sentiment classifier on disk, built and trained once per session
    (tests/sentiment_model.py): loaded through the same code a user's FinBERT goes through."""
    from tests.sentiment_model import build_tiny_classifier

    return build_tiny_classifier(tmp_path_factory.mktemp("sentiment") / "tiny-finbert")
