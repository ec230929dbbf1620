"""news and news_symbols: items of each source (unique id per source), known from
received_at (or published_at for an archive), and the symbols each names

Revision ID: 0013
Revises: 0012
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

import models.base

revision: str = "0013"
down_revision: str | None = "0012"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

BIG_ID = sa.BigInteger().with_variant(sa.Integer(), "sqlite")
JSON_DOC = sa.JSON().with_variant(postgresql.JSONB(astext_type=sa.Text()), "postgresql")
STAMP = models.base.UTCDateTime(timezone=True)


def upgrade() -> None:
    op.create_table(
        "news",
        sa.Column("source", sa.String(length=32), nullable=False),
        sa.Column("source_id", sa.String(length=128), nullable=False),
        sa.Column("headline", sa.Text(), nullable=False),
        sa.Column("summary", sa.Text(), nullable=True),
        sa.Column("symbols", JSON_DOC, nullable=False),
        sa.Column("published_at", STAMP, nullable=False),
        sa.Column("received_at", STAMP, nullable=True),
        sa.Column("known_at", STAMP, nullable=False),
        sa.Column("known_from", sa.String(length=16), nullable=False),
        sa.Column("url", sa.Text(), nullable=True),
        sa.Column("content_hash", sa.String(length=64), nullable=False),
        sa.Column("id", BIG_ID, autoincrement=True, nullable=False),
        sa.Column("created_at", STAMP, nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_news")),
        sa.UniqueConstraint("source", "source_id", name=op.f("uq_news_source_source_id")),
    )
    op.create_index("ix_news_known_at", "news", ["known_at"])
    op.create_table(
        "news_symbols",
        sa.Column("news_id", BIG_ID, nullable=False),
        sa.Column("symbol", sa.String(length=32), nullable=False),
        sa.Column("known_at", STAMP, nullable=False),
        sa.ForeignKeyConstraint(
            ["news_id"], ["news.id"], name=op.f("fk_news_symbols_news_id_news"), ondelete="CASCADE"
        ),
        sa.ForeignKeyConstraint(
            ["symbol"],
            ["instruments.symbol"],
            name=op.f("fk_news_symbols_symbol_instruments"),
        ),
        sa.PrimaryKeyConstraint("news_id", "symbol", name=op.f("pk_news_symbols")),
    )
    op.create_index("ix_news_symbols_symbol_known_at", "news_symbols", ["symbol", "known_at"])


def downgrade() -> None:
    op.drop_index("ix_news_symbols_symbol_known_at", table_name="news_symbols")
    op.drop_table("news_symbols")
    op.drop_index("ix_news_known_at", table_name="news")
    op.drop_table("news")
