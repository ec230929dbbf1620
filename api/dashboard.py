"""The dashboard: one page at `/`, its scripts and styles under `/ui/`, served by the
realtime process from files in this package (api/web/static). No build step and no CDN:
a user who runs `make demo` needs no Node, and the page works offline.

The page's Content-Security-Policy allows only our own origin for scripts, styles,
requests and streams, so the browser itself refuses anything that would leave the
server. `GET /api/auth/me` tells the page who its token is (or the anonymous local
reader), so it can show the caller and offer what its role may do.
"""

from __future__ import annotations

import base64
import hashlib
import re
from pathlib import Path

from fastapi import APIRouter, FastAPI
from fastapi.responses import FileResponse
from fastapi.staticfiles import StaticFiles
from pydantic import BaseModel, Field

from api.auth import Viewer
from api.deps import SettingsDep
from api.errors import problem_responses
from services.prefect_api import resolve_prefect_api

STATIC = Path(__file__).parent / "web" / "static"
CHART_LIBRARY = STATIC / "vendor" / "lightweight-charts.standalone.production.mjs"


def _chart_style_hash() -> str:
    """The CSP source for the one stylesheet the chart library injects (its attribution
    logo's), by hash: that exact text and no other <style> may apply. Read from the
    vendored file, so `make vendor-charts` keeps it right."""
    found = re.search(r'innerText="(a#tv-attr-logo[^"]*)"', CHART_LIBRARY.read_text())
    if found is None:
        return ""
    digest = hashlib.sha256(found.group(1).encode()).digest()
    return f"'sha256-{base64.b64encode(digest).decode()}'"


_CHART_STYLE = _chart_style_hash()
CSP = "; ".join(
    (
        "default-src 'self'",
        "script-src 'self'",
        f"style-src 'self' {_CHART_STYLE}".rstrip(),
        # The chart library positions its canvases with style attributes; attributes only,
        # never a <style> element or a script (decision 0021).
        "style-src-attr 'unsafe-inline'",
        "img-src 'self' data:",
        "connect-src 'self'",
        "object-src 'none'",
        "base-uri 'none'",
        "form-action 'self'",
        "frame-ancestors 'none'",
    )
)
PAGE_HEADERS = {
    "Content-Security-Policy": CSP,
    "Cache-Control": "no-cache",  # a new release's page, not yesterday's
    "X-Content-Type-Options": "nosniff",
}

router = APIRouter()


class PrefectOut(BaseModel):
    ui_url: str | None = Field(description="The Prefect UI flow runs show in; null if none runs.")
    source: str | None = Field(description="Why that server: PREFECT_API_URL or `aitrader up`.")


class CallerOut(BaseModel):
    actor: str
    role: str
    token_id: int | None


@router.get("/", include_in_schema=False)
def dashboard() -> FileResponse:
    """The dashboard's single page."""
    return FileResponse(STATIC / "index.html", headers=PAGE_HEADERS)


@router.get("/api/auth/me", tags=["auth"], responses=problem_responses(401, 403, 422))
def who_am_i(caller: Viewer) -> CallerOut:
    """The caller as the server sees it: a token's user and role, or the anonymous local
    reader (loopback, when `API_ANONYMOUS_READ` is on)."""
    return CallerOut(actor=caller.actor, role=str(caller.role), token_id=caller.token_id)


@router.get("/api/prefect", tags=["jobs"], responses=problem_responses(401, 403, 422))
def prefect_ui(caller: Viewer, settings: SettingsDep) -> PrefectOut:
    """Where the Prefect UI is, for the dashboard's links to flow runs: the configured
    Prefect API or the one `aitrader up` serves. Null when flow runs go to a private
    server that lives only as long as its run (nothing to link to)."""
    found = resolve_prefect_api(settings)
    if found is None:
        return PrefectOut(ui_url=None, source=None)
    return PrefectOut(ui_url=found.ui_url, source=str(found.source))


def mount_dashboard(app: FastAPI) -> None:
    """`/` and `/ui/...` on `app`."""
    app.include_router(router)
    app.mount("/ui", StaticFiles(directory=STATIC), name="ui")
