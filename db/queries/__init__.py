"""Shared query functions. They take a Session and never commit: the caller owns the unit of work."""
