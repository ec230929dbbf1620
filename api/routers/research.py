"""Council research: current and past reports, the prompt, generation jobs, verification."""

from __future__ import annotations

from fastapi import APIRouter

router = APIRouter(prefix="/api/research", tags=["research"])
