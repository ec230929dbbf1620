"""The realtime process's FastAPI application, built by `create_app(settings)`."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from fastapi import FastAPI
from fastapi.responses import Response
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest

from api.errors import register_error_handlers
from api.metrics import Metrics
from api.middleware import RequestContextMiddleware
from api.routers import book, health, signals, stream, ws
from api.runtime import start_runtime
from realtime.sources.base import MarketDataSource
from services.settings import Settings, get_settings


def create_app(
    settings: Settings | None = None, *, source: MarketDataSource | None = None
) -> FastAPI:
    """Build the app. `source` overrides the configured market data source (tests, replays)."""
    settings = settings or get_settings()
    metrics = Metrics()

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        runtime = await start_runtime(settings, metrics, source)
        app.state.runtime = runtime
        try:
            yield
        finally:
            await runtime.stop()

    app = FastAPI(
        title="AITrader",
        summary="Realtime prices, council results and trading for the AITrader dashboard.",
        version="0.1.0",
        lifespan=lifespan,
    )
    app.add_middleware(RequestContextMiddleware, metrics=metrics)
    register_error_handlers(app)
    app.include_router(health.router)
    app.include_router(stream.router)
    app.include_router(ws.router)
    app.include_router(book.router)
    app.include_router(signals.router)

    @app.get("/metrics", include_in_schema=False)
    async def prometheus_metrics() -> Response:
        metrics.refresh()
        return Response(generate_latest(metrics.registry), media_type=CONTENT_TYPE_LATEST)

    return app
