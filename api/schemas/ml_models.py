"""What `GET /api/models` answers: each model name, which version is active, and every
version with its file hash, data range, out-of-sample metrics and standing."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from pydantic import BaseModel, ConfigDict, Field

from models.enums import ModelStatus


class ModelVersionOut(BaseModel):
    model_config = ConfigDict(from_attributes=True)

    version: int
    kind: str
    status: ModelStatus
    onnx_sha256: str
    data_hash: str
    data_from: datetime
    data_to: datetime
    params: dict[str, Any]
    metrics: dict[str, Any] = Field(description="Out of sample, beside their baselines.")
    decision: str | None = Field(description="Why it was promoted, refused or retired.")
    decided_at: datetime | None
    created_at: datetime
    has_card: bool = Field(
        False, description="GET /api/models/{name}/{version}/card answers with its card."
    )


class ModelOut(BaseModel):
    name: str
    active_version: int | None = Field(description="The version that serves; null: none yet.")
    challenger_versions: list[int] = Field(description="Versions scored live beside it (A/B).")
    versions: list[ModelVersionOut] = Field(description="Newest first.")
