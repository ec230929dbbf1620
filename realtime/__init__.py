"""The realtime engine: sources, PriceCache, pattern engine, bus hubs. No HTTP here."""
