"""Prefect tasks, one module per stage, each a plain function with the domain logic inside."""
