"""council audit: run data hash, params and detail; dropped pitches; review labels; votes

Revision ID: 0004
Revises: 0003
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision: str = "0004"
down_revision: str | None = "0003"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def _json() -> sa.JSON:
    return sa.JSON().with_variant(postgresql.JSONB(astext_type=sa.Text()), "postgresql")


def upgrade() -> None:
    with op.batch_alter_table("council_runs") as batch:
        batch.add_column(sa.Column("data_hash", sa.String(length=64), nullable=True))
        batch.add_column(sa.Column("params", _json(), nullable=True))
        batch.add_column(sa.Column("detail", sa.Text(), nullable=True))
        batch.add_column(sa.Column("flow_run_id", sa.String(length=64), nullable=True))
    with op.batch_alter_table("pitches") as batch:
        batch.add_column(sa.Column("dropped_reason", sa.Text(), nullable=True))
    with op.batch_alter_table("peer_reviews") as batch:
        batch.add_column(sa.Column("label", sa.String(length=2), nullable=True))
        batch.add_column(sa.Column("position", sa.Integer(), nullable=True))
    with op.batch_alter_table("council_decisions") as batch:
        batch.add_column(sa.Column("votes", _json(), nullable=True))
        batch.add_column(sa.Column("note", sa.Text(), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("council_decisions") as batch:
        batch.drop_column("note")
        batch.drop_column("votes")
    with op.batch_alter_table("peer_reviews") as batch:
        batch.drop_column("position")
        batch.drop_column("label")
    with op.batch_alter_table("pitches") as batch:
        batch.drop_column("dropped_reason")
    with op.batch_alter_table("council_runs") as batch:
        for column in ("flow_run_id", "detail", "params", "data_hash"):
            batch.drop_column(column)
