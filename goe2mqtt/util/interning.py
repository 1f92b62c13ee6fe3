"""One shared copy of a value that many chargers hold alike.

A fleet's chargers mostly run the same firmware, so they have the same key set and
mostly the same discovery facts: one copy each instead of one per charger
(docs/scaling.md has what the copies cost).
"""

from __future__ import annotations

from collections.abc import Hashable
from typing import Generic, TypeVar

H = TypeVar("H", bound=Hashable)


class Interner(Generic[H]):
    """Hands out the first equal value it kept. Bounded: once `limit` distinct values
    are kept (chargers that all differ, or a hostile one), new ones are returned as
    they are - unshared, never wrong."""

    def __init__(self, limit: int = 1024) -> None:
        self._kept: dict[H, H] = {}
        self._limit = limit

    def __call__(self, value: H) -> H:
        kept = self._kept.get(value)
        if kept is not None:
            return kept
        if len(self._kept) < self._limit:
            self._kept[value] = value
        return value

    def __len__(self) -> int:
        return len(self._kept)
