"""The exception tree. Catch at the level where something can be done.

* AITraderError
  x ConfigurationError          bad settings, caught at start-up
  x DataError
    x DataFileError             missing file, unknown layout, unreadable content
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


class DataFileError(DataError):
    """A data file (bars, instruments) is missing, unreadable or in an unknown layout."""


class DatabaseUnavailableError(AITraderError):
    """The configured database cannot be connected to."""


class NotFoundError(AITraderError):
    """A requested record does not exist."""
