"""Text rules every layer shares: control characters, what people type, slugs."""

from __future__ import annotations

import re
import unicodedata
from typing import Any

_CONTROL = re.compile(r"[\x00-\x1f\x7f]")


def has_control(text: str) -> bool:
    """Whether ``text`` holds a control character (a newline in a token, a NUL)."""
    return _CONTROL.search(text) is not None


def printable(text: str) -> str:
    """Someone else's text made safe for one log line: what is not printable becomes ?."""
    return "".join(c if c.isprintable() else "?" for c in text)


# Home Assistant keeps at most 255 characters of a state; a longer one it refuses.
MAX_STATE_LENGTH = 255
# Controls (NUL, ESC), format characters (the bidi overrides U+202A-202E and isolates
# U+2066-2069, zero-width ones), line and paragraph separators, lone surrogates (which
# UTF-8 cannot even encode): nothing a reader should get from a peer's text.
_UNSHOWN = frozenset({"Cc", "Cf", "Zl", "Zp", "Cs"})


def clean_text(text: str, limit: int = MAX_STATE_LENGTH) -> str:
    """A peer's text as it may be published: without control, format or separator
    characters, and at most ``limit`` characters long."""
    if not text.isprintable():  # the common case costs one pass in C
        text = "".join(
            c if unicodedata.category(c) not in _UNSHOWN else " " if c.isspace() else ""
            for c in text
        )  # a line break or tab still parts two words
    return text[:limit]


def fold(text: str) -> str:
    """What people type, folded: '3 Phases', 'next-trip' -> '3_phases', 'next_trip'."""
    return re.sub(r"[\s-]+", "_", text.strip().lower())


def slug(name: str) -> str:
    """A display name as an id: 'Charging current' -> 'charging_current'. Of a name of
    ours (a-z 0-9 _ -) the id Home Assistant makes (homeassistant.util.slugify): each run
    of - and _ one _, none at the ends, so garage-1, garage_1 and garage__1 are one."""
    return re.sub(r"[^a-z0-9]+", "_", name.lower()).strip("_")


def without_none(fields: dict[str, Any]) -> dict[str, Any]:
    """Home Assistant's optional fields: only those with a value."""
    return {key: value for key, value in fields.items() if value is not None}
