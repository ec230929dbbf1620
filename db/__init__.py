"""Engine, sessions, Alembic migrations and the query functions flows and routers share."""
