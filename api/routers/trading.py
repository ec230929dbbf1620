"""Orders, fills, round-trip trades, and the intents waiting for a trader's approval."""

from __future__ import annotations

from fastapi import APIRouter

router = APIRouter(prefix="/api", tags=["trading"])
