"""Query functions shared by flows and routers.

They take a Session and never commit: the caller owns the unit of work.
"""
