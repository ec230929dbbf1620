"""Execution: approved intents to broker orders, exactly once."""
