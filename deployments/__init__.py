"""How AITrader runs: Prefect deployments, the local serve entry, container recipes."""
