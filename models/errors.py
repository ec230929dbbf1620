"""The exception tree. Catch at the level where something can be done.

* AITraderError
  x ConfigurationError          bad settings, caught at start-up
  x DataError
    x BarFileError              missing file, unknown layout, unreadable content
  x DatabaseUnavailableError    the database URL cannot be reached
  x NotFoundError
"""

from __future__ import annotations


class AITraderError(Exception):
    """Base of every error AITrader raises on purpose."""


class ConfigurationError(AITraderError):
    """A setting is missing or invalid; the message names the variable."""


class DataError(AITraderError):
    """Input data cannot be used as given."""


class BarFileError(DataError):
    """A bar file is missing, unreadable or in a layout we do not recognise."""


class DatabaseUnavailableError(AITraderError):
    """The configured database cannot be connected to."""


class NotFoundError(AITraderError):
    """A requested record does not exist."""
