"""The hashes that key LLM calls: apart from the gateway, so reading them needs no litellm.

The API's research routes show a prompt's hash without calling a model; importing
the gateway for that loaded litellm (2-3 s, ~100 MB) into the realtime server.
"""

from __future__ import annotations

import hashlib
import json
from typing import Any

from pydantic import BaseModel

Message = dict[str, Any]


def cache_key(
    model: str, messages: list[Message], schema: type[BaseModel], params: dict[str, Any]
) -> str:
    """sha256 of everything that determines an answer: model, messages, schema, parameters."""
    payload = {
        "model": model,
        "messages": messages,
        "schema": schema.model_json_schema(),
        "params": params,
    }
    return hashlib.sha256(canonical(payload)).hexdigest()


def prompt_hash(messages: list[Message]) -> str:
    return hashlib.sha256(canonical(messages)).hexdigest()


def canonical(value: object) -> bytes:
    return json.dumps(value, sort_keys=True, separators=(",", ":"), default=str).encode()
