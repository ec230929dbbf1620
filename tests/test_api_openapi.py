"""The OpenAPI page documents every route: what it does, what it answers, how it fails."""

from __future__ import annotations

from typing import Any

from api.app import create_app
from services.settings import Settings

PROBES = {"/health", "/ready", "/health/db", "/health/redis", "/health/services"}
STREAMS = {"/api/stream/prices", "/api/conversations/{conversation_id}/message/stream"}


def _operations() -> list[tuple[str, str, dict[str, Any]]]:
    schema = create_app(Settings()).openapi()
    return [
        (method.upper(), path, op)
        for path, item in schema["paths"].items()
        for method, op in item.items()
        if method in {"get", "post", "put", "patch", "delete"}
    ]


def test_every_route_says_what_it_does_and_what_it_answers() -> None:
    undocumented, untyped = [], []
    for method, path, op in _operations():
        if not op.get("description"):
            undocumented.append(f"{method} {path}")
        ok = {code: r for code, r in op["responses"].items() if code.startswith("2")}
        if path in PROBES | STREAMS or "204" in ok:
            continue
        schemas = [  # JSON mostly; a model card is markdown, typed as a string
            body.get("schema")
            for r in ok.values()
            for media, body in r.get("content", {}).items()
            if media in {"application/json", "text/markdown"}
        ]
        if not any(schemas):
            untyped.append(f"{method} {path}")
    assert undocumented == []
    assert untyped == []


def test_every_guarded_route_documents_its_problem_answers() -> None:
    missing = []
    for method, path, op in _operations():
        if path in PROBES:
            continue
        for code in ("401", "403", "422"):
            content = op["responses"].get(code, {}).get("content", {})
            if "application/problem+json" not in content:
                missing.append(f"{method} {path} {code}")
    assert missing == []


def test_request_bodies_come_with_examples() -> None:
    schema = create_app(Settings()).openapi()
    without = []
    for method, path, op in _operations():
        body = op.get("requestBody")
        if body is None:
            continue
        media = body["content"]["application/json"]
        ref = media["schema"].get("$ref", "")
        component = schema["components"]["schemas"].get(ref.rsplit("/", 1)[-1], {})
        if not (media.get("examples") or media.get("example") or component.get("examples")):
            without.append(f"{method} {path}")
    assert without == []
