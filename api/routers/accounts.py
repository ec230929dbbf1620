"""Positions and broker accounts, from our books and (for one account) the broker."""

from __future__ import annotations

from fastapi import APIRouter

router = APIRouter(prefix="/api", tags=["accounts"])
