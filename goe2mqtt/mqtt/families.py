"""Retained families: topics whose payloads the store builds when it sends them.

A family (a charger's discovery configs, its state topics) is built again from a few
facts whenever it must be sent, so the store (mqtt/retained.py) keeps the family, not
its payloads. Knows MQTT topics and nothing of go-e.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from typing import Protocol

FAMILY = "#"  # a family's key starts with it; no topic one may publish to does


class Family(Protocol):
    """Retained topics built from a few facts whenever they are sent, instead of held.

    ``key`` (FAMILY + a name) stays the same for every version of the family; equal
    families build equal members; ``size`` is how many members it has; ``topics()``
    names them without building a payload; ``members()`` builds each topic's payload,
    one at a time, always in the same order.
    """

    @property
    def key(self) -> str: ...

    @property
    def size(self) -> int: ...

    def topics(self) -> Iterable[str]: ...

    def members(self) -> Iterator[tuple[str, bytes]]: ...


class LiveFamily(Family, Protocol):
    """A family whose members change one at a time (put_member), each built from what
    is true when it is sent; ``member(topic)`` builds one, None when it has none now."""

    def member(self, topic: str) -> bytes | None: ...


class SendingFamily:
    """A family owed whole, taken for sending: its members built one at a time."""

    __slots__ = ("ahead", "dropped", "key", "members", "order", "pending", "size", "taken")

    def __init__(self, family: Family, order: int = 0) -> None:
        self.order = order  # when it was taken, among everything the store took
        self.key, self.size = family.key, family.size
        self.members = members = family.members()
        self.ahead = next(members, None)  # the next member; None: all taken
        self.taken = 0
        self.pending = 0  # taken, neither acknowledged nor failed
        self.dropped = False  # a member failed: the family is owed whole again


# Taken for sending: topic, payload, the family sent whole it belongs to (or None).
Taken = tuple[str, bytes, SendingFamily | None]
