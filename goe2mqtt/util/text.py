"""Text rules every layer shares: control characters, what people type, slugs."""

from __future__ import annotations

import re
from typing import Any

_CONTROL = re.compile(r"[\x00-\x1f\x7f]")


def has_control(text: str) -> bool:
    """Whether ``text`` holds a control character (a newline in a token, a NUL)."""
    return _CONTROL.search(text) is not None


def printable(text: str) -> str:
    """Someone else's text made safe for one log line: what is not printable becomes ?."""
    return "".join(c if c.isprintable() else "?" for c in text)


def fold(text: str) -> str:
    """What people type, folded: '3 Phases', 'next-trip' -> '3_phases', 'next_trip'."""
    return re.sub(r"[\s-]+", "_", text.strip().lower())


def slug(name: str) -> str:
    """A display name as an id: 'Charging current' -> 'charging_current'."""
    return re.sub(r"[^a-z0-9]+", "_", name.lower()).strip("_")


def without_none(fields: dict[str, Any]) -> dict[str, Any]:
    """Home Assistant's optional fields: only those with a value."""
    return {key: value for key, value in fields.items() if value is not None}
