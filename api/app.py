"""The realtime process's FastAPI application, built by `create_app(settings)`.

Every router under `/api` is included behind `Require(viewer)`, so a route
added later is guarded even if its author forgets; routes that write ask
for more (`Trader`, `Admin`, `LLMSpender` in their signatures). Health,
readiness, metrics and the OpenAPI pages are open: probes and docs.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from fastapi import Depends, FastAPI, Request
from fastapi.middleware.cors import CORSMiddleware
from fastapi.responses import Response
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest

from api.auth import Require
from api.body_limit import BodyLimitMiddleware
from api.dashboard import mount_dashboard
from api.docs_pages import add_docs_pages
from api.errors import problem_responses, register_error_handlers
from api.idempotency import IdempotencyMiddleware, document_idempotency
from api.metrics import Metrics
from api.middleware import RequestContextMiddleware
from api.realtime_metrics import export_runtime
from api.routers import (
    accounts,
    audit,
    backtests,
    book,
    conversations,
    council,
    data_package,
    graphs,
    halts,
    health,
    jobs,
    market,
    ml_models,
    pitches,
    portfolio,
    research,
    sentiment,
    signals,
    stream,
    suggestions,
    track_record,
    trading,
    watchlist,
    ws,
)
from api.state import ApiState
from models.enums import Role
from realtime.runtime import RuntimeHooks, start_runtime
from realtime.sources.base import MarketDataSource
from services.settings import Settings, get_settings
from tasks.import_news import import_news_rows

GUARDED = (
    conversations.router,
    ml_models.router,
    audit.router,
    jobs.router,
    backtests.router,
    track_record.router,  # before council's: `/api/council/{run_id}` would take its paths
    council.router,
    market.router,
    research.router,
    graphs.router,
    data_package.router,
    pitches.router,
    trading.router,
    accounts.router,
    portfolio.router,
    watchlist.router,
    halts.router,
    book.router,
    signals.router,
    suggestions.router,
    sentiment.router,
)


def create_app(
    settings: Settings | None = None, *, source: MarketDataSource | None = None
) -> FastAPI:
    """Build the app. `source` overrides the configured market data source (tests, replays)."""
    settings = settings or get_settings()
    metrics = Metrics()

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        hooks = RuntimeHooks(
            store_news=import_news_rows, on_suggestion_latency=metrics.suggestion_latency.observe
        )
        runtime = await start_runtime(settings, source, hooks)
        export_runtime(metrics, runtime)
        app.state.runtime = runtime
        try:
            yield
        finally:
            await runtime.stop()

    app = FastAPI(
        title="AITrader",
        summary="Realtime prices, council results and trading for the AITrader dashboard.",
        description=(
            "Authenticate with `Authorization: Bearer <token>` (`aitrader token create "
            "--role viewer|trader|admin`). Reads need viewer; anything that moves money or "
            "spends on language models needs trader; halting trading and the audit log need "
            "admin. Errors are `application/problem+json`. Lists take `limit`, `offset`, "
            "`since` and `until` and answer a page with `next_offset`."
        ),
        version="0.1.0",
        lifespan=lifespan,
        docs_url=None,  # FastAPI's pages load their scripts from a CDN: ours are packaged
        redoc_url=None,
    )
    add_docs_pages(app)
    app.add_middleware(IdempotencyMiddleware)  # innermost: sees a bounded body, a request id
    app.add_middleware(BodyLimitMiddleware, max_bytes=settings.api_max_body_bytes)
    app.add_middleware(RequestContextMiddleware, metrics=metrics)
    if settings.api_cors_origins:
        app.add_middleware(
            CORSMiddleware,
            allow_origins=settings.api_cors_origins,
            allow_methods=["GET", "POST", "PUT", "PATCH", "DELETE"],
            allow_headers=["Authorization", "Content-Type", "X-Request-ID", "Last-Event-ID"],
            expose_headers=["X-Request-ID", "Retry-After"],
        )
    register_error_handlers(app)
    app.include_router(health.router)
    app.include_router(stream.router, responses=problem_responses(401, 403, 422))
    app.include_router(ws.router)
    viewer = [Depends(Require(Role.VIEWER))]
    for router in GUARDED:
        app.include_router(
            router, dependencies=viewer, responses=problem_responses(401, 403, 404, 422)
        )

    mount_dashboard(app)  # `/` and `/ui/`: the page holds no data; its requests are guarded
    document_idempotency(app)

    app.state.metrics = metrics
    app.state.api = ApiState.for_settings(settings, metrics)
    app.add_api_route("/metrics", prometheus_metrics, include_in_schema=False)
    return app


def app_from_environment() -> FastAPI:
    """The app as each of `aitrader serve --workers N`'s processes builds it: from the
    environment (and `.env`), with logging set up as the CLI sets it up."""
    from services.log_setup import configure_logging

    settings = get_settings()
    configure_logging(settings.log_level, settings.log_format)
    return create_app(settings)


async def prometheus_metrics(request: Request) -> Response:
    """Module-level, reading the app's registry from the request: FastAPI keeps every
    endpoint in a module-level cache, and a closure over `metrics` kept each app's runtime
    and engine alive after the app stopped (see api/docs_pages.py)."""
    metrics: Metrics = request.app.state.metrics
    metrics.refresh()
    return Response(generate_latest(metrics.registry), media_type=CONTENT_TYPE_LATEST)
