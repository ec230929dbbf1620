"""signal kinds: one signal per strategy, symbol, timeframe, kind and ts

The pattern engine fires several kinds of signal on one tick (a z-score
breakout and a volume spike, say); the old unique key would have refused the
second. Also indexes for "recent signals" (by ts, and by symbol then ts).

Revision ID: 0002
Revises: 0001
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0002"
down_revision: str | None = "0001"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    with op.batch_alter_table("signals") as batch:
        batch.add_column(sa.Column("kind", sa.String(length=32), server_default="", nullable=False))
        batch.drop_constraint("uq_signals_strategy_id_symbol_timeframe_ts", type_="unique")
        batch.create_unique_constraint(
            "uq_signals_strategy_id_symbol_timeframe_kind_ts",
            ["strategy_id", "symbol", "timeframe", "kind", "ts"],
        )
        batch.create_index("ix_signals_ts", ["ts"])
        batch.create_index("ix_signals_symbol_ts", ["symbol", "ts"])


def downgrade() -> None:
    with op.batch_alter_table("signals") as batch:
        batch.drop_index("ix_signals_symbol_ts")
        batch.drop_index("ix_signals_ts")
        batch.drop_constraint("uq_signals_strategy_id_symbol_timeframe_kind_ts", type_="unique")
        batch.create_unique_constraint(
            "uq_signals_strategy_id_symbol_timeframe_ts",
            ["strategy_id", "symbol", "timeframe", "ts"],
        )
        batch.drop_column("kind")
