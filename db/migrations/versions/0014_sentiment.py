"""news_scores (one row per item and scorer) and symbol_sentiment (per symbol, as_of and scorer)

Revision ID: 0014
Revises: 0013
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

import models.base

revision: str = "0014"
down_revision: str | None = "0013"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

BIG_ID = sa.BigInteger().with_variant(sa.Integer(), "sqlite")
STAMP = models.base.UTCDateTime(timezone=True)


def upgrade() -> None:
    op.create_table(
        "news_scores",
        sa.Column("news_id", BIG_ID, nullable=False),
        sa.Column("scorer", sa.String(length=128), nullable=False),
        sa.Column("score", sa.Float(), nullable=False),
        sa.Column("label", sa.String(length=16), nullable=False),
        sa.Column("scored_at", STAMP, nullable=False),
        sa.ForeignKeyConstraint(
            ["news_id"], ["news.id"], name=op.f("fk_news_scores_news_id_news"), ondelete="CASCADE"
        ),
        sa.PrimaryKeyConstraint("news_id", "scorer", name=op.f("pk_news_scores")),
    )
    op.create_table(
        "symbol_sentiment",
        sa.Column("symbol", sa.String(length=32), nullable=False),
        sa.Column("as_of", STAMP, nullable=False),
        sa.Column("scorer", sa.String(length=128), nullable=False),
        sa.Column("score", sa.Float(), nullable=False),
        sa.Column("count", sa.Integer(), nullable=False),
        sa.Column("dispersion", sa.Float(), nullable=False),
        sa.Column("change", sa.Float(), nullable=True),
        sa.Column("first_known_at", STAMP, nullable=False),
        sa.Column("last_known_at", STAMP, nullable=False),
        sa.Column("half_life_h", sa.Float(), nullable=False),
        sa.Column("window_h", sa.Float(), nullable=False),
        sa.Column("id", BIG_ID, autoincrement=True, nullable=False),
        sa.Column("created_at", STAMP, nullable=False),
        sa.ForeignKeyConstraint(
            ["symbol"],
            ["instruments.symbol"],
            name=op.f("fk_symbol_sentiment_symbol_instruments"),
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_symbol_sentiment")),
        sa.UniqueConstraint(
            "symbol", "as_of", "scorer", name=op.f("uq_symbol_sentiment_symbol_as_of_scorer")
        ),
    )
    op.create_index("ix_symbol_sentiment_symbol_as_of", "symbol_sentiment", ["symbol", "as_of"])


def downgrade() -> None:
    op.drop_index("ix_symbol_sentiment_symbol_as_of", table_name="symbol_sentiment")
    op.drop_table("symbol_sentiment")
    op.drop_table("news_scores")
