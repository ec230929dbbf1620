"""The portfolio's value now (marked at live prices) and its history."""

from __future__ import annotations

from fastapi import APIRouter

router = APIRouter(prefix="/api/portfolio", tags=["portfolio"])
