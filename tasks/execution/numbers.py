"""Numbers in the reasons people read (risk checks, sizing): `720 x 55.53`, not
`720.00000000 x 55.53000000`. Stored Decimals carry the column's 8 places."""

from __future__ import annotations

from decimal import Decimal


def plain(value: Decimal) -> str:
    """A quantity or price as a person writes it: no trailing zeros, thousands separated."""
    if value == 0:
        return "0"  # never "-0" or "0E-8"
    return f"{value.normalize():,f}"
