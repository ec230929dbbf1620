-- Runs once, when the `postgres` service initialises an empty data volume
-- (/docker-entrypoint-initdb.d), as POSTGRES_USER (aitrader), who owns the result.
-- Prefect's server keeps its own database: both it and AITrader migrate with Alembic,
-- and each needs its own alembic_version table. A volume created before this file
-- existed has no `prefect` database: create it by hand (docs/deploy.md).
CREATE DATABASE prefect;
