"""council_backtests, their sittings and trades; pitch_outcomes and reviewer_scores

Revision ID: 0015
Revises: 0014
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

import models.base

revision: str = "0015"
down_revision: str | None = "0014"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:

    op.create_table(
        "council_backtests",
        sa.Column("job_id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), nullable=True),
        sa.Column("flow_run_id", sa.String(length=64), nullable=True),
        sa.Column(
            "status",
            sa.Enum(
                "pending",
                "running",
                "completed",
                "failed",
                "canceled",
                name="runstatus",
                native_enum=False,
                length=24,
            ),
            nullable=False,
        ),
        sa.Column("start", models.base.UTCDateTime(timezone=True), nullable=False),
        sa.Column("end", models.base.UTCDateTime(timezone=True), nullable=False),
        sa.Column(
            "universe",
            sa.JSON().with_variant(postgresql.JSONB(astext_type=sa.Text()), "postgresql"),
            nullable=False,
        ),
        sa.Column(
            "params",
            sa.JSON().with_variant(postgresql.JSONB(astext_type=sa.Text()), "postgresql"),
            nullable=False,
        ),
        sa.Column("sittings", sa.Integer(), nullable=False),
        sa.Column("sittings_done", sa.Integer(), nullable=False),
        sa.Column("budget_usd", sa.Numeric(precision=24, scale=8), nullable=True),
        sa.Column("cost_usd", sa.Numeric(precision=24, scale=8), nullable=False),
        sa.Column("requests", sa.Integer(), nullable=False),
        sa.Column("cache_hits", sa.Integer(), nullable=False),
        sa.Column(
            "metrics",
            sa.JSON().with_variant(postgresql.JSONB(astext_type=sa.Text()), "postgresql"),
            nullable=True,
        ),
        sa.Column(
            "equity",
            sa.JSON().with_variant(postgresql.JSONB(astext_type=sa.Text()), "postgresql"),
            nullable=True,
        ),
        sa.Column(
            "report",
            sa.JSON().with_variant(postgresql.JSONB(astext_type=sa.Text()), "postgresql"),
            nullable=True,
        ),
        sa.Column("error", sa.Text(), nullable=True),
        sa.Column("finished_at", models.base.UTCDateTime(timezone=True), nullable=True),
        sa.Column(
            "id",
            sa.BigInteger().with_variant(sa.Integer(), "sqlite"),
            autoincrement=True,
            nullable=False,
        ),
        sa.Column("created_at", models.base.UTCDateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(
            ["job_id"], ["jobs.id"], name=op.f("fk_council_backtests_job_id_jobs")
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_council_backtests")),
    )
    op.create_table(
        "council_backtest_sittings",
        sa.Column(
            "backtest_id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), nullable=False
        ),
        sa.Column("as_of", models.base.UTCDateTime(timezone=True), nullable=False),
        sa.Column(
            "council_run_id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), nullable=True
        ),
        sa.Column(
            "status",
            sa.Enum(
                "pending",
                "running",
                "completed",
                "failed",
                "canceled",
                name="runstatus",
                native_enum=False,
                length=24,
            ),
            nullable=False,
        ),
        sa.Column("anonymised", sa.Boolean(), nullable=False),
        sa.Column("decisions", sa.Integer(), nullable=False),
        sa.Column("cost_usd", sa.Numeric(precision=24, scale=8), nullable=False),
        sa.Column("requests", sa.Integer(), nullable=False),
        sa.Column("cache_hits", sa.Integer(), nullable=False),
        sa.Column(
            "cutoff_flags",
            sa.JSON().with_variant(postgresql.JSONB(astext_type=sa.Text()), "postgresql"),
            nullable=False,
        ),
        sa.Column("detail", sa.Text(), nullable=True),
        sa.Column(
            "id",
            sa.BigInteger().with_variant(sa.Integer(), "sqlite"),
            autoincrement=True,
            nullable=False,
        ),
        sa.Column("created_at", models.base.UTCDateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(
            ["backtest_id"],
            ["council_backtests.id"],
            name=op.f("fk_council_backtest_sittings_backtest_id_council_backtests"),
            ondelete="CASCADE",
        ),
        sa.ForeignKeyConstraint(
            ["council_run_id"],
            ["council_runs.id"],
            name=op.f("fk_council_backtest_sittings_council_run_id_council_runs"),
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_council_backtest_sittings")),
        sa.UniqueConstraint(
            "backtest_id",
            "as_of",
            "anonymised",
            name=op.f("uq_council_backtest_sittings_backtest_id_as_of_anonymised"),
        ),
    )
    op.create_table(
        "reviewer_scores",
        sa.Column("run_id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), nullable=False),
        sa.Column("reviewer", sa.String(length=100), nullable=False),
        sa.Column("model", sa.String(length=100), nullable=False),
        sa.Column("as_of", models.base.UTCDateTime(timezone=True), nullable=False),
        sa.Column("pitches", sa.Integer(), nullable=False),
        sa.Column("rank_corr", sa.Float(), nullable=True),
        sa.Column("may_know", sa.Boolean(), nullable=False),
        sa.Column(
            "id",
            sa.BigInteger().with_variant(sa.Integer(), "sqlite"),
            autoincrement=True,
            nullable=False,
        ),
        sa.Column("created_at", models.base.UTCDateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(
            ["run_id"],
            ["council_runs.id"],
            name=op.f("fk_reviewer_scores_run_id_council_runs"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_reviewer_scores")),
        sa.UniqueConstraint("run_id", "reviewer", name=op.f("uq_reviewer_scores_run_id_reviewer")),
    )
    op.create_table(
        "pitch_outcomes",
        sa.Column("pitch_id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), nullable=False),
        sa.Column("run_id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), nullable=False),
        sa.Column("member", sa.String(length=100), nullable=False),
        sa.Column("model", sa.String(length=100), nullable=False),
        sa.Column("symbol", sa.String(length=32), nullable=False),
        sa.Column(
            "side",
            sa.Enum("buy", "sell", name="side", native_enum=False, length=24),
            nullable=False,
        ),
        sa.Column("as_of", models.base.UTCDateTime(timezone=True), nullable=False),
        sa.Column("outcome", sa.String(length=16), nullable=False),
        sa.Column("entry_price", sa.Numeric(precision=24, scale=8), nullable=False),
        sa.Column("exit_price", sa.Numeric(precision=24, scale=8), nullable=False),
        sa.Column("exit_at", models.base.UTCDateTime(timezone=True), nullable=False),
        sa.Column("days", sa.Integer(), nullable=False),
        sa.Column("ret", sa.Float(), nullable=False),
        sa.Column("universe_ret", sa.Float(), nullable=False),
        sa.Column("excess", sa.Float(), nullable=False),
        sa.Column("approved", sa.Boolean(), nullable=False),
        sa.Column("may_know", sa.Boolean(), nullable=False),
        sa.Column(
            "id",
            sa.BigInteger().with_variant(sa.Integer(), "sqlite"),
            autoincrement=True,
            nullable=False,
        ),
        sa.Column("created_at", models.base.UTCDateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(
            ["pitch_id"],
            ["pitches.id"],
            name=op.f("fk_pitch_outcomes_pitch_id_pitches"),
            ondelete="CASCADE",
        ),
        sa.ForeignKeyConstraint(
            ["run_id"],
            ["council_runs.id"],
            name=op.f("fk_pitch_outcomes_run_id_council_runs"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_pitch_outcomes")),
        sa.UniqueConstraint("pitch_id", name=op.f("uq_pitch_outcomes_pitch_id")),
    )
    op.create_table(
        "council_backtest_trades",
        sa.Column(
            "backtest_id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), nullable=False
        ),
        sa.Column("book", sa.String(length=16), nullable=False),
        sa.Column(
            "decision_id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), nullable=True
        ),
        sa.Column("decided_at", models.base.UTCDateTime(timezone=True), nullable=False),
        sa.Column("symbol", sa.String(length=32), nullable=False),
        sa.Column(
            "side",
            sa.Enum("buy", "sell", name="side", native_enum=False, length=24),
            nullable=False,
        ),
        sa.Column("weight", sa.Numeric(precision=24, scale=8), nullable=False),
        sa.Column("qty", sa.Numeric(precision=24, scale=8), nullable=False),
        sa.Column("entry_ts", models.base.UTCDateTime(timezone=True), nullable=True),
        sa.Column("entry_price", sa.Numeric(precision=24, scale=8), nullable=True),
        sa.Column("exit_ts", models.base.UTCDateTime(timezone=True), nullable=True),
        sa.Column("exit_price", sa.Numeric(precision=24, scale=8), nullable=True),
        sa.Column("pnl", sa.Numeric(precision=24, scale=8), nullable=True),
        sa.Column("return_pct", sa.Float(), nullable=True),
        sa.Column("exit_reason", sa.String(length=16), nullable=True),
        sa.Column("refused", sa.Text(), nullable=True),
        sa.Column(
            "id",
            sa.BigInteger().with_variant(sa.Integer(), "sqlite"),
            autoincrement=True,
            nullable=False,
        ),
        sa.ForeignKeyConstraint(
            ["backtest_id"],
            ["council_backtests.id"],
            name=op.f("fk_council_backtest_trades_backtest_id_council_backtests"),
            ondelete="CASCADE",
        ),
        sa.ForeignKeyConstraint(
            ["decision_id"],
            ["council_decisions.id"],
            name=op.f("fk_council_backtest_trades_decision_id_council_decisions"),
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_council_backtest_trades")),
    )


def downgrade() -> None:

    op.drop_table("council_backtest_trades")
    op.drop_table("pitch_outcomes")
    op.drop_table("reviewer_scores")
    op.drop_table("council_backtest_sittings")
    op.drop_table("council_backtests")
