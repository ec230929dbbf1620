"""Alembic environment: the engine comes from `db.migrate`, the target from `models`."""

from __future__ import annotations

from alembic import context
from sqlalchemy import Engine

from models.tables import Base

config = context.config
engine: Engine = config.attributes["engine"]

with engine.connect() as connection:
    context.configure(
        connection=connection,
        target_metadata=Base.metadata,
        compare_type=True,
        render_as_batch=connection.dialect.name == "sqlite",
    )
    with context.begin_transaction():
        context.run_migrations()
    connection.commit()
