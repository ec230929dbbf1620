"""Clients of the outside world and configuration: settings, LLM gateway, bus, brokers, vendors."""
