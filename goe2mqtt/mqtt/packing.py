"""Retained payloads compressed once they stay unchanged (for mqtt/retained.py).

A charger's JSON state is ~3.3 KB, ~1 KB zlib-compressed, and compressing it costs
~0.1 ms of CPU. Compressed at every change, that was a quarter of a 10 000-charger
restart's CPU and a good part of each pushed change's; yet most of a fleet's states
change rarely. So a payload is kept as it came, and compressed once it stayed unchanged
for PACK_AFTER (to twice that): a topic that changes often is never compressed, a quiet
one holds a third of the memory. Knows MQTT and nothing of go-e.
"""

from __future__ import annotations

import time
import zlib
from collections.abc import Callable, MutableMapping
from typing import Any

PACK_FROM = 256  # bytes: smaller payloads are kept as they are
PACK_AFTER = 30.0  # seconds unchanged before a payload is kept compressed


class Packed(bytes):
    """A retained payload kept compressed."""


def unpack(stored: bytes) -> bytes:
    return zlib.decompress(stored) if isinstance(stored, Packed) else stored


def same(stored: bytes, payload: bytes) -> bool:
    """Whether two payloads, each compressed or not, say the same."""
    if isinstance(stored, Packed) == isinstance(payload, Packed):
        return bytes.__eq__(stored, payload)  # zlib at one level: equal input, equal output
    return unpack(stored) == unpack(payload)


class Packing:
    """Which topics' payloads stayed unchanged for a sweep interval: those are packed.

    ``stored`` notes a payload as it is kept; ``sweep`` (when ``due``) compresses the
    payloads noted in the interval before the last sweep and not since."""

    def __init__(self, clock: Callable[[], float] = time.monotonic) -> None:
        self._clock = clock
        self._fresh: set[str] = set()  # stored as they came since the last sweep
        self._aging: set[str] = set()  # ... in the interval before it
        self._next = clock() + PACK_AFTER
        self.packed = 0  # payloads compressed so far

    def stored(self, topic: str, data: bytes) -> None:
        if len(data) >= PACK_FROM and not isinstance(data, Packed):
            self._fresh.add(topic)

    def due(self) -> bool:
        return self._clock() >= self._next

    def sweep(self, retained: MutableMapping[str, Any]) -> None:
        """Compress what stayed unchanged for a whole interval (in place: the order of
        ``retained`` is what is sent again, and stays)."""
        self._next = self._clock() + PACK_AFTER
        for topic in self._aging - self._fresh:
            value = retained.get(topic)
            if type(value) is bytes and len(value) >= PACK_FROM:
                retained[topic] = Packed(zlib.compress(value, 6))
                self.packed += 1
        self._aging, self._fresh = self._fresh, set()
