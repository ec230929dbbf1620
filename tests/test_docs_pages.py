"""`/docs` and `/redoc` work offline: every script, stylesheet and icon they load comes
from our own server, and each answers with the asset."""

from __future__ import annotations

import re
from urllib.parse import urljoin

import pytest

from tests.api_support import Api

ASSET = re.compile(r"""(?:src|href)=["']([^"']+)["']""")


@pytest.mark.parametrize("page", ["/docs", "/redoc"])
def test_the_api_docs_load_nothing_from_another_host(api: Api, page: str) -> None:
    html = api.get(page)
    assert html.status_code == 200
    assert "text/html" in html.headers["content-type"]
    assets = [url for url in ASSET.findall(html.text) if not url.startswith("#")]
    assert any(url.endswith(".js") for url in assets), html.text
    for url in assets:
        assert not url.startswith(("http:", "https:", "//")), f"{page} loads {url} from elsewhere"
        loaded = api.get(urljoin(page, url))
        assert loaded.status_code == 200, url
        assert len(loaded.content) > 1000 or url.endswith(".png"), url
