"""Value types and renderings every layer shares."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

# What JSON holds: what go-e answers, what a command carries, what a set sends.
JsonValue = None | bool | int | float | str | list[Any] | dict[str, Any]


def iso(timestamp: float | None) -> str | None:
    """A unix time as ISO 8601 in UTC, to the second (None stays None)."""
    if timestamp is None:
        return None
    return datetime.fromtimestamp(timestamp, UTC).isoformat(timespec="seconds")
