"""The model registry, read-only: every model, its versions and which one serves."""

from __future__ import annotations

from itertools import groupby
from typing import Annotated

from fastapi import APIRouter, Query

from api.deps import ReadSession
from api.errors import problem_responses
from api.schemas.ml_models import ModelOut, ModelVersionOut
from db.queries.model_registry import versions
from models.enums import ModelStatus

router = APIRouter(prefix="/api/models", tags=["models"])


@router.get("", responses=problem_responses(401, 403, 422))
def read_models(
    session: ReadSession,
    name: Annotated[
        str | None, Query(min_length=1, max_length=100, description="One model by name.")
    ] = None,
) -> list[ModelOut]:
    """Models by name; each with its active version, its A/B challengers and every
    version's metrics and standing, newest first. Empty before the first training run."""
    out = []
    for model, rows in groupby(versions(session, name), key=lambda row: row.name):
        listed = [ModelVersionOut.model_validate(row) for row in rows]
        out.append(
            ModelOut(
                name=model,
                active_version=next(
                    (v.version for v in listed if v.status is ModelStatus.ACTIVE), None
                ),
                challenger_versions=[
                    v.version for v in listed if v.status is ModelStatus.CHALLENGER
                ],
                versions=listed,
            )
        )
    return out
