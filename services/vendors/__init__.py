"""Market-data vendors: bar files (CSV/Parquet), Alpaca data."""
