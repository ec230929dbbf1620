"""The `aitrader` command line: database, data import and demo commands."""
