"""Getting a schema-valid object out of a model: how to ask, how to parse, how to ask again.

Two ways to ask. Where litellm says the model supports it, the JSON schema
goes in `response_format` (the provider constrains the answer). Otherwise the
schema is put in the prompt ("JSON in prompt") and the answer is parsed from
the text, tolerating a code fence or prose around one JSON object. Either
way the answer is validated with pydantic; a failure is shown to the model
once, with the validation error, to repair.
"""

from __future__ import annotations

import json
import re
from typing import Any, TypeVar

from pydantic import BaseModel, ValidationError

T = TypeVar("T", bound=BaseModel)

_FENCE = re.compile(r"```(?:json)?\s*(.*?)```", re.DOTALL | re.IGNORECASE)
MAX_ERROR_CHARS = 2000


def response_format(schema: type[BaseModel]) -> dict[str, Any]:
    return {
        "type": "json_schema",
        "json_schema": {
            "name": schema.__name__,
            "schema": schema.model_json_schema(),
            "strict": False,  # strict mode rejects schemas with optional fields and defaults
        },
    }


def schema_instruction(schema: type[BaseModel]) -> dict[str, str]:
    """A system message that asks for one JSON object of `schema`, and nothing else."""
    return {
        "role": "system",
        "content": (
            "Answer with a single JSON object, no prose and no code fence, that validates "
            f"against this JSON schema:\n{json.dumps(schema.model_json_schema(), sort_keys=True)}"
        ),
    }


def extract_json(text: str) -> str:
    """The JSON object in a model's answer: the whole text, a fenced block, or the outer braces."""
    stripped = text.strip()
    if stripped.startswith("{"):
        return stripped
    fenced = _FENCE.search(stripped)
    if fenced:
        return fenced.group(1).strip()
    start, end = stripped.find("{"), stripped.rfind("}")
    return stripped[start : end + 1] if 0 <= start < end else stripped


def parse(text: str | None, schema: type[T]) -> T:
    """Validate a model's answer; raises `ValueError` (pydantic's included) saying what is wrong."""
    if not text or not text.strip():
        raise ValueError("the answer is empty")
    return schema.model_validate_json(extract_json(text))


def describe(exc: Exception) -> str:
    """A compact account of why an answer failed, for the record and for the repair prompt."""
    if isinstance(exc, ValidationError):
        lines = [
            f"{'.'.join(str(p) for p in err['loc']) or '(root)'}: {err['msg']}"
            for err in exc.errors(include_url=False)[:20]
        ]
        text = f"{exc.error_count()} validation error(s): " + "; ".join(lines)
    else:
        text = f"{type(exc).__name__}: {exc}"
    return text[:MAX_ERROR_CHARS]


def repair_request(raw: str | None, error: str) -> list[dict[str, str]]:
    """What to add to the conversation to ask for a corrected answer."""
    return [
        {"role": "assistant", "content": raw or ""},
        {
            "role": "user",
            "content": (
                f"Your answer could not be used: {error}\n"
                "Reply with the corrected JSON object only."
            ),
        },
    ]
