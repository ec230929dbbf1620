"""research_verdicts: a person's verdict on a research note (verified or disputed), who gave
it, when and why, beside the note rather than in it (the note is the model's record)

Revision ID: 0009
Revises: 0008
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

import models.base

revision: str = "0009"
down_revision: str | None = "0008"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

BIG_ID = sa.BigInteger().with_variant(sa.Integer(), "sqlite")


def upgrade() -> None:
    op.create_table(
        "research_verdicts",
        sa.Column("report_id", BIG_ID, nullable=False),
        sa.Column(
            "verdict",
            sa.Enum("verified", "disputed", name="reportverdict", native_enum=False, length=24),
            nullable=False,
        ),
        sa.Column("note", sa.Text(), nullable=True),
        sa.Column("actor", sa.String(length=100), nullable=False),
        sa.Column("token_id", BIG_ID, nullable=True),
        sa.Column("id", BIG_ID, autoincrement=True, nullable=False),
        sa.Column("created_at", models.base.UTCDateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(
            ["report_id"],
            ["research_reports.id"],
            name=op.f("fk_research_verdicts_report_id_research_reports"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_research_verdicts")),
    )
    op.create_index(
        op.f("ix_research_verdicts_report_id"), "research_verdicts", ["report_id"], unique=False
    )


def downgrade() -> None:
    op.drop_index(op.f("ix_research_verdicts_report_id"), table_name="research_verdicts")
    op.drop_table("research_verdicts")
