"""Trained models: every registered version of a model, its file, its data and its scores."""

from __future__ import annotations

from datetime import datetime
from typing import Any, Literal

from sqlalchemy import Index, String, Text, UniqueConstraint, text
from sqlalchemy.orm import Mapped, mapped_column

from models.base import Base, CreatedMixin, IdMixin
from models.enums import ModelStatus

Stacks = Literal["generic", "interpretable"]
"""N-BEATS stack types (services/ml/nets.py); here so a flow's signature needs no torch."""


class ModelVersion(IdMixin, CreatedMixin, Base):
    """One trained version of a named model (`forecaster`, `pattern_classifier`).

    The ONNX file is named by its path and pinned by its SHA-256, the data by its
    hash and range, so a version can be traced to what it learned from. `metrics`
    are out of sample, beside the baselines they were measured against. At most one
    version of a name is `active` (a partial unique index on both databases).
    """

    __tablename__ = "model_versions"
    __table_args__ = (
        UniqueConstraint("name", "version"),
        Index(
            "uq_model_versions_one_active",
            "name",
            unique=True,
            sqlite_where=text("status = 'active'"),
            postgresql_where=text("status = 'active'"),
        ),
    )

    name: Mapped[str] = mapped_column(String(100))
    version: Mapped[int]
    kind: Mapped[str] = mapped_column(String(32))  # forecaster | pattern_classifier
    onnx_path: Mapped[str] = mapped_column(Text)
    onnx_sha256: Mapped[str] = mapped_column(String(64))
    data_hash: Mapped[str] = mapped_column(String(64))
    data_from: Mapped[datetime]
    data_to: Mapped[datetime]
    params: Mapped[dict[str, Any]] = mapped_column(default=dict)
    metrics: Mapped[dict[str, Any]] = mapped_column(default=dict)
    status: Mapped[ModelStatus] = mapped_column(default=ModelStatus.CANDIDATE)
    decided_at: Mapped[datetime | None]
    decision: Mapped[str | None] = mapped_column(Text)  # why promoted, refused or retired
    card: Mapped[str | None] = mapped_column(Text)  # the model card (markdown), once written
