"""Prefect flows: the weekly council, backtests, training and sentiment jobs. They compose tasks."""
