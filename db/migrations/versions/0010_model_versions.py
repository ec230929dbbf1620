"""model_versions: every registered version of a trained model (its ONNX file and hash, the
data it learned from, its out-of-sample metrics) and its standing; one active per name

Revision ID: 0010
Revises: 0009
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

import models.base

revision: str = "0010"
down_revision: str | None = "0009"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

BIG_ID = sa.BigInteger().with_variant(sa.Integer(), "sqlite")
JSON_DOC = sa.JSON().with_variant(postgresql.JSONB(astext_type=sa.Text()), "postgresql")
STATUS = sa.Enum(
    "candidate",
    "active",
    "challenger",
    "retired",
    "refused",
    name="modelstatus",
    native_enum=False,
    length=24,
)
ACTIVE = sa.text("status = 'active'")


def upgrade() -> None:
    op.create_table(
        "model_versions",
        sa.Column("name", sa.String(length=100), nullable=False),
        sa.Column("version", sa.Integer(), nullable=False),
        sa.Column("kind", sa.String(length=32), nullable=False),
        sa.Column("onnx_path", sa.Text(), nullable=False),
        sa.Column("onnx_sha256", sa.String(length=64), nullable=False),
        sa.Column("data_hash", sa.String(length=64), nullable=False),
        sa.Column("data_from", models.base.UTCDateTime(timezone=True), nullable=False),
        sa.Column("data_to", models.base.UTCDateTime(timezone=True), nullable=False),
        sa.Column("params", JSON_DOC, nullable=False),
        sa.Column("metrics", JSON_DOC, nullable=False),
        sa.Column("status", STATUS, nullable=False),
        sa.Column("decided_at", models.base.UTCDateTime(timezone=True), nullable=True),
        sa.Column("decision", sa.Text(), nullable=True),
        sa.Column("id", BIG_ID, autoincrement=True, nullable=False),
        sa.Column("created_at", models.base.UTCDateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_model_versions")),
        sa.UniqueConstraint("name", "version", name=op.f("uq_model_versions_name_version")),
    )
    op.create_index(
        "uq_model_versions_one_active",
        "model_versions",
        ["name"],
        unique=True,
        sqlite_where=ACTIVE,
        postgresql_where=ACTIVE,
    )


def downgrade() -> None:
    op.drop_index("uq_model_versions_one_active", table_name="model_versions")
    op.drop_table("model_versions")
