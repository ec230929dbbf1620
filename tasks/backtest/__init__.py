"""Backtests: a vectorised engine over a time x symbol x parameter-set panel, its metrics,
built-in strategies, grid sweeps and walk-forward. Pure functions over numpy arrays; the
flows in flows/backtest.py add the database, Prefect and the artifacts."""
