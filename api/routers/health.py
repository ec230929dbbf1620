"""Liveness, readiness and per-dependency health."""

from __future__ import annotations

import asyncio

import httpx
from fastapi import APIRouter
from fastapi.responses import JSONResponse
from sqlalchemy import text
from sqlalchemy.exc import SQLAlchemyError

from api.deps import RuntimeDep
from realtime.runtime import Runtime

router = APIRouter(tags=["health"])


@router.get("/health")
async def health() -> dict[str, str]:
    """Liveness: the process answers. Nothing else is checked."""
    return {"status": "ok"}


@router.get("/ready")
async def ready(runtime: RuntimeDep) -> JSONResponse:
    """Ready when the market data source (on a replica: the following of the ingest tier's
    streams) runs and the database answers."""
    db_ok, db_detail = await _database(runtime)
    checks = {
        "source": {"ok": runtime.feed.running, "name": runtime.feed.name},
        "database": {"ok": db_ok, "detail": db_detail},
    }
    ok = all(c["ok"] for c in checks.values())
    return JSONResponse({"ready": ok, "checks": checks}, status_code=200 if ok else 503)


@router.get("/health/db")
async def health_db(runtime: RuntimeDep) -> JSONResponse:
    """The database answers a `SELECT 1` within 3 s (503 with the reason if not)."""
    ok, detail = await _database(runtime)
    return JSONResponse({"ok": ok, "detail": detail}, status_code=200 if ok else 503)


@router.get("/health/redis")
async def health_redis(runtime: RuntimeDep) -> JSONResponse:
    """In-process bus: always ok. Redis: ok, or degraded with the reason (prices keep flowing)."""
    ok = await runtime.bus.healthy()
    return JSONResponse(
        {"ok": ok, "bus": type(runtime.bus).__name__, "status": runtime.bus.status},
        status_code=200 if ok else 503,
    )


@router.get("/health/services")
async def health_services(runtime: RuntimeDep) -> JSONResponse:
    """External services we depend on: the Prefect API when one is configured."""
    url = runtime.settings.prefect_api_url
    if not url:
        return JSONResponse({"prefect": {"ok": True, "detail": "ephemeral (not configured)"}})
    try:
        async with httpx.AsyncClient(timeout=2.0) as client:
            response = await client.get(url.rstrip("/") + "/health")
        ok, detail = response.status_code == 200, f"HTTP {response.status_code}"
    except httpx.HTTPError as exc:
        ok, detail = False, f"{type(exc).__name__}: {exc}"
    return JSONResponse({"prefect": {"ok": ok, "detail": detail}}, status_code=200 if ok else 503)


async def _database(runtime: Runtime) -> tuple[bool, str]:
    def ping() -> None:
        with runtime.engine.connect() as conn:
            conn.execute(text("SELECT 1"))

    try:
        async with asyncio.timeout(3.0):
            await asyncio.to_thread(ping)
    except (SQLAlchemyError, TimeoutError) as exc:
        return False, f"{type(exc).__name__}: {str(exc).splitlines()[0] if str(exc) else ''}"
    return True, runtime.engine.dialect.name
