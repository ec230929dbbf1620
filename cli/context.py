"""What every command needs: settings, logging, an engine, and one error edge.

Imported by every command module, so it imports only typer and rich itself:
the database, settings and Prefect load when a command opens its context.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterator
from contextlib import AbstractContextManager, contextmanager
from dataclasses import dataclass
from functools import wraps
from typing import TYPE_CHECKING, ParamSpec, TypeVar

import typer
from rich.console import Console

from models.errors import AITraderError, ConfigurationError

if TYPE_CHECKING:
    from sqlalchemy import Engine
    from sqlalchemy.orm import Session, sessionmaker

    from services.prefect_api import PrefectApi
    from services.settings import Settings

console = Console()
err_console = Console(stderr=True)
logger = logging.getLogger("cli")

P = ParamSpec("P")
R = TypeVar("R")


@dataclass
class CommandContext:
    settings: Settings
    engine: Engine
    sessions: sessionmaker[Session]

    @contextmanager
    def transaction(self) -> Iterator[Session]:
        from db.engine import unit_of_work

        with unit_of_work(self.sessions) as session:
            yield session

    def prefect(self) -> AbstractContextManager[PrefectApi]:
        """Run flows inside this: Prefect's client then talks to PREFECT_API_URL, the server
        of an `aitrader up` beside us, or a private server started (and stopped) for it."""
        from services.prefect_api import use_prefect_api

        return use_prefect_api(self.settings, notify=_say)

    def require_schema(self) -> None:
        """Refuse to work on a database that is not at the migration head."""
        from db.migrate import current_revision, head_revision

        current, head = current_revision(self.engine), head_revision(self.engine)
        if current != head:
            raise ConfigurationError(
                f"database is at revision {current or 'none'}, code expects {head}: "
                "run `aitrader db upgrade`"
            )


def open_context() -> CommandContext:
    from db.engine import check_connection, make_engine, make_session_factory
    from services.log_setup import configure_logging
    from services.settings import get_settings, load_settings

    # Flows read the process's cached settings; a command starts from what the environment
    # says now, so both agree even when one process runs several commands (tests do).
    get_settings.cache_clear()
    settings = load_settings()
    configure_logging(settings.log_level, settings.log_format)
    logging.getLogger("alembic").setLevel(logging.WARNING)  # the CLI prints its own summary
    engine = make_engine(settings.database_url, echo=settings.database_echo)
    check_connection(engine)
    return CommandContext(settings=settings, engine=engine, sessions=make_session_factory(engine))


def quiet_prefect() -> None:
    """Load Prefect, and take its console handler off the root logger.

    Prefect puts it beside ours, so each of the flow's records would print twice. Ours
    stays: LOG_FORMAT applies to the flow's logs too."""
    from prefect.logging.handlers import PrefectConsoleHandler

    root = logging.getLogger()
    for handler in [h for h in root.handlers if isinstance(h, PrefectConsoleHandler)]:
        root.removeHandler(handler)


def _say(line: str) -> None:
    err_console.print(line, highlight=False, markup=False, soft_wrap=True)


def run_command(fn: Callable[P, R]) -> Callable[P, R]:
    """The process edge: turn expected failures into one line and exit code 1."""

    @wraps(fn)
    def wrapper(*args: P.args, **kwargs: P.kwargs) -> R:
        from sqlalchemy.exc import SQLAlchemyError

        try:
            return fn(*args, **kwargs)
        except AITraderError as exc:
            err_console.print(f"[bold red]error:[/] {exc}", highlight=False, soft_wrap=True)
        except SQLAlchemyError as exc:
            reason = str(getattr(exc, "orig", None) or exc).strip().splitlines()[0]
            err_console.print(f"[bold red]error:[/] database: {reason}", highlight=False)
        raise typer.Exit(code=1)

    return wrapper
