"""api: token roles, who did what over the API, chat answers, where a job runs

Revision ID: 0006
Revises: 0005
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

import models.base

revision: str = "0006"
down_revision: str | None = "0005"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

BIG_ID = sa.BigInteger().with_variant(sa.Integer(), "sqlite")


def upgrade() -> None:
    with op.batch_alter_table("api_tokens") as batch:
        batch.add_column(
            sa.Column(
                "role",
                sa.Enum("viewer", "trader", "admin", name="role", native_enum=False, length=24),
                nullable=False,
                server_default="viewer",
            )
        )
    with op.batch_alter_table("audit_events") as batch:
        batch.add_column(sa.Column("token_id", BIG_ID, nullable=True))
        batch.add_column(sa.Column("role", sa.String(length=16), nullable=True))
        batch.add_column(sa.Column("request_id", sa.String(length=64), nullable=True))
    with op.batch_alter_table("chat_messages") as batch:
        batch.add_column(sa.Column("payload", models.base.JSONDoc, nullable=True))
    with op.batch_alter_table("jobs") as batch:
        batch.add_column(sa.Column("runner", sa.String(length=16), nullable=True))
        batch.add_column(sa.Column("token_id", BIG_ID, nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("jobs") as batch:
        batch.drop_column("token_id")
        batch.drop_column("runner")
    with op.batch_alter_table("chat_messages") as batch:
        batch.drop_column("payload")
    with op.batch_alter_table("audit_events") as batch:
        batch.drop_column("request_id")
        batch.drop_column("role")
        batch.drop_column("token_id")
    with op.batch_alter_table("api_tokens") as batch:
        batch.drop_column("role")
