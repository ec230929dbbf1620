"""What one LLM call leaves behind, as data: the gateway builds it, a store persists it."""

from __future__ import annotations

from decimal import Decimal
from typing import Any

from pydantic import BaseModel, ConfigDict

from models.enums import LLMCallStatus


class LLMCallRecord(BaseModel):
    """One call through the gateway: its inputs, its answer (raw and parsed) and its cost.

    `attempts` counts network round trips that produced an answer (1, or 2
    after a repair); retried transport failures are not attempts. A cache hit
    costs nothing and names the answer it replayed in `raw_output`.
    """

    model_config = ConfigDict(frozen=True)

    run_id: int | None = None
    stage: str
    member: str
    model: str
    provider: str
    schema_name: str
    prompt_hash: str
    cache_key: str
    messages: list[dict[str, Any]]
    params: dict[str, Any]
    raw_output: str | None = None
    parsed_output: dict[str, Any] | None = None
    status: LLMCallStatus
    error: str | None = None
    prompt_tokens: int = 0
    completion_tokens: int = 0
    cost_usd: Decimal = Decimal(0)
    latency_ms: int = 0
    cache_hit: bool = False
    attempts: int = 0
