"""PM pitches: the current week's, generation jobs, and approving one."""

from __future__ import annotations

from fastapi import APIRouter

router = APIRouter(prefix="/api/pitches", tags=["pitches"])
