"""A websocket's full status as it arrives in parts, bounded whatever the peer sends.

A charger sends its full status in a handful of ``partial: true`` frames (about
10 KiB in all) and a last one. A peer that never sends the last one must not make
the bridge hold what it sends: only the keys the bridge reads are kept (the
KeyFilter, as for deltas), and the parts are bounded in number, bytes and time.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from goe2mqtt.goe.pushed import KeyFilter, PushedStatus
from goe2mqtt.goe.ws_protocol import ProtocolError
from goe2mqtt.util.logs import SkipCount

MAX_PARTS = 64  # frames of one full status (a charger sends a handful)
MAX_PARTS_BYTES = 2 << 20  # their text together: 200 times a real full status
PARTS_WITHIN = 30.0  # seconds from the first part to the last


class FullStatusParts:
    """The full status being assembled on one connection."""

    def __init__(self, keys: KeyFilter, skipped: SkipCount) -> None:
        self._kept = PushedStatus(keys, skipped)
        self._parts = 0
        self._bytes = 0
        self.started: float | None = None  # loop time of the first part; None: none yet

    def add(self, status: Mapping[str, Any], size: int, now: float) -> None:
        """One frame's status (``size``: its text's length); ProtocolError past a bound."""
        if self.started is None:
            self.started = now
        self._parts += 1
        self._bytes += size
        if self._parts > MAX_PARTS:
            raise ProtocolError(f"a full status in more than {MAX_PARTS} parts")
        if self._bytes > MAX_PARTS_BYTES:
            raise ProtocolError(f"a full status over {MAX_PARTS_BYTES >> 20} MiB")
        if now - self.started > PARTS_WITHIN:
            raise ProtocolError(self.overdue)
        self._kept.update(status)

    @property
    def due(self) -> float | None:
        """Loop time by which the last part must have come; None: nothing pending."""
        return None if self.started is None else self.started + PARTS_WITHIN

    @property
    def overdue(self) -> str:
        return f"a full status not complete within {PARTS_WITHIN:.0f} s"

    def complete(self) -> dict[str, Any]:
        """The last part came: what was kept, and a fresh start."""
        values = self._kept.read()
        self.clear()
        return values

    def clear(self) -> None:
        self._kept.replace({})
        self._parts = self._bytes = 0
        self.started = None
