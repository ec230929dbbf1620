"""The model registry, read-only: every model, its versions and which one serves."""

from __future__ import annotations

from itertools import groupby
from typing import Annotated

from fastapi import APIRouter, Path, Query
from fastapi.responses import PlainTextResponse

from api.deps import ReadSession
from api.errors import problem_responses
from api.schemas.ml_models import ModelOut, ModelVersionOut
from db.queries.model_registry import get_version, versions
from models.enums import ModelStatus
from models.errors import NotFoundError

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
        listed = [
            ModelVersionOut.model_validate(row).model_copy(
                update={"has_card": row.card is not None}
            )
            for row in rows
        ]
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


@router.get(
    "/{name}/{version}/card",
    response_class=PlainTextResponse,
    responses={
        200: {"content": {"text/markdown": {"schema": {"type": "string"}}}},
        **problem_responses(401, 403, 404, 422),
    },
)
def read_card(
    session: ReadSession,
    name: Annotated[str, Path(min_length=1, max_length=100)],
    version: Annotated[int, Path(ge=1, le=1_000_000)],
) -> PlainTextResponse:
    """The version's model card (markdown): its data, metrics against baselines, the
    decision on it and its known limits."""
    row = get_version(session, name, version)
    if row.card is None:
        raise NotFoundError(f"{name} v{version} has no model card (registered before cards)")
    return PlainTextResponse(row.card, media_type="text/markdown; charset=utf-8")
