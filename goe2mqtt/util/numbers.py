"""What counts as a number, wherever one comes from: MQTT payloads, go-e answers, config.

JSON has no limit on integers (a 400-digit one parses) and Python reads 1e400 as
infinity: neither fits a float, and a float is what every reader downstream (go-e,
Home Assistant, JavaScript) holds. Every path that takes a number asks here first.
"""

from __future__ import annotations

import math
from typing import Any, TypeGuard

# Beyond this an integer loses precision as a float (HA, Node-RED, JavaScript); no
# meter of a wallbox gets there, and 10**400 would not even convert.
MAX_EXACT_INTEGER = 2**53


def is_number(value: Any) -> TypeGuard[int | float]:
    """An int or a float, and not a bool (which Python counts as an int)."""
    return isinstance(value, int | float) and not isinstance(value, bool)


def finite_number(value: Any) -> int | float | None:
    """``value`` if it is a number that a float holds (finite, an integer within
    2**53); None for anything else, so arithmetic on it can never overflow."""
    if not is_number(value):
        return None
    if isinstance(value, int):
        return value if abs(value) <= MAX_EXACT_INTEGER else None
    return value if math.isfinite(value) else None


def lenient_number(value: Any) -> Any:
    """A number typed as text ("16", " -250.5 ") becomes that number; anything else
    is returned as it is, for the caller's own check (finite_number). Only as people
    write numbers: Python's float() reads "1_5" as 15 and the digits of every script
    ("\u0661\u0666" as 16), and a price of "0_3" was taken as 3.0."""
    if isinstance(value, str):
        text = value.strip()
        if not text.isascii() or "_" in text:
            return value
        try:
            return float(text)
        except ValueError:
            return value
    return value


def describe(value: Any) -> str:
    """A short, safe rendering of a refused value for a reason text."""
    if isinstance(value, int) and not isinstance(value, bool) and abs(value) > MAX_EXACT_INTEGER:
        # str() of a huge int is itself limited (4300 digits): count from the bits.
        return f"a number of about {int(value.bit_length() * 0.30103) + 1} digits"
    text = repr(value)
    return text if len(text) <= 40 else text[:37] + "..."
