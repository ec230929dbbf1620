"""The kill switch: halt and resume trading (admin), and its state."""

from __future__ import annotations

from fastapi import APIRouter

router = APIRouter(prefix="/api/trading", tags=["trading"])
