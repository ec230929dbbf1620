"""What the API process keeps of its own, beside the realtime runtime it serves from.

The realtime runtime (`app.state.runtime`, realtime/runtime.py) is prices, books,
engines and hubs; this (`app.state.api`) is what only HTTP needs: the per-token
LLM rate limiter, when each token was last recorded as used, and the metrics.
Built with the app (no start-up work), so it exists before the lifespan runs.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from fastapi.requests import HTTPConnection

from api.metrics import Metrics
from api.rate_limit import RateLimiter
from services.settings import Settings


@dataclass
class ApiState:
    metrics: Metrics
    llm_limiter: RateLimiter
    token_touched: dict[int, float] = field(default_factory=dict)  # api.auth: last_used_at

    @classmethod
    def for_settings(cls, settings: Settings, metrics: Metrics) -> ApiState:
        return cls(metrics=metrics, llm_limiter=RateLimiter(settings.api_llm_rate_per_minute))


def api_state(connection: HTTPConnection) -> ApiState:
    state: ApiState = connection.app.state.api
    return state
