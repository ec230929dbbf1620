"""Market data sources: simulator (default), replay, Alpaca. One protocol, chosen by settings."""
