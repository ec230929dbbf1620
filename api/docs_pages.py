"""`/docs` and `/redoc` from assets shipped in a wheel, never from a CDN.

FastAPI's own pages load Swagger UI and ReDoc from jsDelivr; on a machine
without internet (as trading hosts often are) they stay blank. The
`fastapi-offline` wheel carries the same scripts: they are served here under
`/docs-assets/` and FastAPI's page builders are pointed at them. The pages
stay FastAPI's, so they follow its OpenAPI URL and its OAuth redirect.
"""

from __future__ import annotations

from pathlib import Path

import fastapi_offline
from fastapi import FastAPI
from fastapi.openapi.docs import get_redoc_html, get_swagger_ui_html
from fastapi.responses import HTMLResponse
from fastapi.staticfiles import StaticFiles

ASSETS = Path(fastapi_offline.__file__).parent / "static"
PREFIX = "/docs-assets"


def add_docs_pages(app: FastAPI) -> None:
    """Mount the assets and add both pages; the app must be built with docs_url=None and
    redoc_url=None so FastAPI's CDN pages are not added too."""
    app.mount(PREFIX, StaticFiles(directory=ASSETS), name="docs-assets")
    openapi_url = app.openapi_url or "/openapi.json"
    title = f"{app.title} — API"
    # The pages close over strings only, never `app`: FastAPI keeps every endpoint in a
    # module-level cache (4,096 entries), so a closure over the app keeps the whole app,
    # its runtime and its engine alive after it stops (a leak for anyone, tests included,
    # who builds more than one app in a process).

    @app.get("/docs", include_in_schema=False)
    async def swagger_ui() -> HTMLResponse:
        return get_swagger_ui_html(
            openapi_url=openapi_url,
            title=title,
            swagger_js_url=f"{PREFIX}/swagger-ui-bundle.js",
            swagger_css_url=f"{PREFIX}/swagger-ui.css",
            swagger_favicon_url=f"{PREFIX}/favicon.png",
        )

    @app.get("/redoc", include_in_schema=False)
    async def redoc() -> HTMLResponse:
        return get_redoc_html(
            openapi_url=openapi_url,
            title=title,
            redoc_js_url=f"{PREFIX}/redoc.standalone.js",
            redoc_favicon_url=f"{PREFIX}/favicon.png",
            with_google_fonts=False,
        )
