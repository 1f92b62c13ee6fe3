"""Value types and renderings every layer shares."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from typing import Any

from goe2mqtt.util.numbers import finite_number, is_number

# What JSON holds: what go-e answers, what a command carries, what a set sends.
JsonValue = None | bool | int | float | str | list[Any] | dict[str, Any]


def iso(timestamp: float | None) -> str | None:
    """A unix time as ISO 8601 in UTC, to the second (None stays None)."""
    if timestamp is None:
        return None
    return datetime.fromtimestamp(timestamp, UTC).isoformat(timespec="seconds")


def has_surrogate(value: Any) -> bool:
    """Whether a string in it is no Unicode text: JSON's escapes can make a lone UTF-16
    surrogate, which no UTF-8 holds; echoed in a result, it stopped the bridge."""
    try:
        json.dumps(value, ensure_ascii=False).encode()
    except UnicodeEncodeError:
        return True
    return False


def echoable_id(value: Any) -> bool:
    """A command id (a charger's or a site's) that can be echoed in a result and read
    back by any client: JSON has no Infinity or NaN (1e400 parses as inf), JavaScript
    loses a 400-digit integer, and no UTF-8 holds a lone surrogate. true and false are
    no id: two clients that both send one cannot tell their results apart."""
    if isinstance(value, bool):
        return False
    if is_number(value):
        return finite_number(value) is not None
    if isinstance(value, str):
        return not has_surrogate(value)
    return value is None
