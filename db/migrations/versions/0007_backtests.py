"""backtests: what a run was (kind, config, benchmark, equity), every parameter set's
metrics, and the chosen set's trades

Revision ID: 0007
Revises: 0006
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

import models.base

revision: str = "0007"
down_revision: str | None = "0006"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "backtest_param_results",
        sa.Column(
            "backtest_id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), nullable=False
        ),
        sa.Column("segment", sa.String(length=32), nullable=False),
        sa.Column("start", models.base.UTCDateTime(timezone=True), nullable=False),
        sa.Column("end", models.base.UTCDateTime(timezone=True), nullable=False),
        sa.Column(
            "params",
            sa.JSON().with_variant(postgresql.JSONB(astext_type=sa.Text()), "postgresql"),
            nullable=False,
        ),
        sa.Column(
            "metrics",
            sa.JSON().with_variant(postgresql.JSONB(astext_type=sa.Text()), "postgresql"),
            nullable=False,
        ),
        sa.Column(
            "id",
            sa.BigInteger().with_variant(sa.Integer(), "sqlite"),
            autoincrement=True,
            nullable=False,
        ),
        sa.ForeignKeyConstraint(
            ["backtest_id"],
            ["backtests.id"],
            name=op.f("fk_backtest_param_results_backtest_id_backtests"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_backtest_param_results")),
    )
    with op.batch_alter_table("backtest_param_results", schema=None) as batch_op:
        batch_op.create_index(
            "ix_backtest_param_results_backtest_id_segment",
            ["backtest_id", "segment"],
            unique=False,
        )

    op.create_table(
        "backtest_trades",
        sa.Column(
            "backtest_id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), nullable=False
        ),
        sa.Column("symbol", sa.String(length=32), nullable=False),
        sa.Column(
            "direction",
            sa.Enum("long", "short", "both", name="direction", native_enum=False, length=24),
            nullable=False,
        ),
        sa.Column("entry_ts", models.base.UTCDateTime(timezone=True), nullable=False),
        sa.Column("entry_price", sa.Numeric(precision=24, scale=8), nullable=False),
        sa.Column("exit_ts", models.base.UTCDateTime(timezone=True), nullable=True),
        sa.Column("exit_price", sa.Numeric(precision=24, scale=8), nullable=True),
        sa.Column("qty", sa.Numeric(precision=24, scale=8), nullable=False),
        sa.Column("fees", sa.Numeric(precision=24, scale=8), nullable=False),
        sa.Column("pnl", sa.Numeric(precision=24, scale=8), nullable=False),
        sa.Column("return_pct", sa.Float(), nullable=False),
        sa.Column(
            "exit_reason",
            sa.Enum(
                "signal",
                "stop_loss",
                "take_profit",
                "trailing_stop",
                "end_of_data",
                "open",
                name="exitreason",
                native_enum=False,
                length=24,
            ),
            nullable=False,
        ),
        sa.Column(
            "id",
            sa.BigInteger().with_variant(sa.Integer(), "sqlite"),
            autoincrement=True,
            nullable=False,
        ),
        sa.ForeignKeyConstraint(
            ["backtest_id"],
            ["backtests.id"],
            name=op.f("fk_backtest_trades_backtest_id_backtests"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_backtest_trades")),
    )
    with op.batch_alter_table("backtest_trades", schema=None) as batch_op:
        batch_op.create_index(
            "ix_backtest_trades_backtest_id_symbol", ["backtest_id", "symbol"], unique=False
        )

    with op.batch_alter_table("backtests", schema=None) as batch_op:
        batch_op.add_column(
            sa.Column("kind", sa.String(length=16), server_default="single", nullable=False)
        )
        batch_op.add_column(sa.Column("strategy_name", sa.String(length=200), nullable=True))
        batch_op.add_column(
            sa.Column(
                "config",
                sa.JSON().with_variant(postgresql.JSONB(astext_type=sa.Text()), "postgresql"),
                server_default=sa.text("'{}'"),
                nullable=False,
            )
        )
        batch_op.add_column(
            sa.Column(
                "best_params",
                sa.JSON().with_variant(postgresql.JSONB(astext_type=sa.Text()), "postgresql"),
                nullable=True,
            )
        )
        batch_op.add_column(
            sa.Column(
                "benchmark",
                sa.JSON().with_variant(postgresql.JSONB(astext_type=sa.Text()), "postgresql"),
                nullable=True,
            )
        )
        batch_op.add_column(
            sa.Column(
                "equity",
                sa.JSON().with_variant(postgresql.JSONB(astext_type=sa.Text()), "postgresql"),
                nullable=True,
            )
        )
        batch_op.add_column(sa.Column("error", sa.Text(), nullable=True))
        batch_op.add_column(sa.Column("flow_run_id", sa.String(length=64), nullable=True))
        batch_op.add_column(
            sa.Column("finished_at", models.base.UTCDateTime(timezone=True), nullable=True)
        )


def downgrade() -> None:
    with op.batch_alter_table("backtests", schema=None) as batch_op:
        batch_op.drop_column("finished_at")
        batch_op.drop_column("flow_run_id")
        batch_op.drop_column("error")
        batch_op.drop_column("equity")
        batch_op.drop_column("benchmark")
        batch_op.drop_column("best_params")
        batch_op.drop_column("config")
        batch_op.drop_column("strategy_name")
        batch_op.drop_column("kind")

    with op.batch_alter_table("backtest_trades", schema=None) as batch_op:
        batch_op.drop_index("ix_backtest_trades_backtest_id_symbol")

    op.drop_table("backtest_trades")
    with op.batch_alter_table("backtest_param_results", schema=None) as batch_op:
        batch_op.drop_index("ix_backtest_param_results_backtest_id_segment")

    op.drop_table("backtest_param_results")
