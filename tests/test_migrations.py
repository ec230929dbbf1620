from __future__ import annotations

from alembic import command
from sqlalchemy import inspect

from db.engine import make_engine
from db.migrate import alembic_config, current_revision, head_revision, schema_drift, upgrade
from models.tables import Base


def test_upgrade_reaches_head_and_matches_the_models(fresh_db_url: str) -> None:
    engine = make_engine(fresh_db_url)
    assert current_revision(engine) is None
    upgrade(engine)
    assert current_revision(engine) == head_revision(engine)
    assert schema_drift(engine) == []
    assert set(Base.metadata.tables) <= set(inspect(engine).get_table_names())
    engine.dispose()


def test_upgrade_twice_is_a_no_op_and_downgrade_round_trips(fresh_db_url: str) -> None:
    engine = make_engine(fresh_db_url)
    upgrade(engine)
    upgrade(engine)
    command.downgrade(alembic_config(engine), "base")
    assert "bars" not in inspect(engine).get_table_names()
    upgrade(engine)
    assert schema_drift(engine) == []
    engine.dispose()
