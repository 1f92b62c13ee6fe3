"""Retained topics that vouch for families: a charger's "online" says its states are there.

The retained store (mqtt/retained.py) owes changes ahead of what is only sent again
(mqtt/owed.py). A charger back "online" while a reconnect or Home Assistant's birth sent
everything again said so as a change, ahead of its own states still waiting in the
re-send, and a broker that had lost its retained messages held "online" with those
states missing until the re-send reached them.

So whoever stores a topic names the families its payload vouches for (none: it vouches
for nothing, as "offline" does). When such a topic is next to go, a family it vouches
for that is still owed, in either queue, goes first, as what the topic goes as: with a
change, as a change, not at the re-send's bulk pace (mqtt/pace.py; a live family taken
as a change is not bulk), so nothing made after it waits for the re-send of other
families. Decided when the topic is taken, not when it is stored: a reconnect that owes
the family again, or a family given back when the connection dropped under it, comes
after the voucher was stored and would otherwise go behind it again; and a re-send begun
while the family was on its way (owed again last, behind its voucher owed before)
lost to a dropped connection sent "online" ahead of it too. Knows MQTT topics and
nothing of go-e.
"""

from __future__ import annotations

from collections.abc import Iterable

from goe2mqtt.mqtt.owed import Owed


class Vouches:
    """Topic -> the family keys its retained payload vouches for (while it does)."""

    __slots__ = ("_keys",)

    def __init__(self) -> None:
        self._keys: dict[str, tuple[str, ...]] = {}

    def stored(self, topic: str, keys: Iterable[str]) -> None:
        """``topic`` holds a new payload, vouching for ``keys`` (empty: for nothing)."""
        vouched = tuple(keys)
        if vouched:
            self._keys[topic] = vouched
        elif self._keys:
            self._keys.pop(topic, None)

    def peek(self, owed: Owed) -> tuple[str, bool] | None:
        """What take() would return, and whether it goes as a change (Owed.peek)."""
        head = owed.peek()
        key = self._ahead(owed, head)
        return head if key is None or head is None else (key, head[1])

    def take(self, owed: Owed) -> str | None:
        """The next name owed (Owed.take), but a family still owed goes before the
        topic that vouches for it."""
        key = self._ahead(owed, owed.peek())
        if key is None:
            return owed.take()
        owed.pull(key)
        return key

    def _ahead(self, owed: Owed, head: tuple[str, bool] | None) -> str | None:
        """A family the head vouches for, still owed (None: none)."""
        if head is None or not self._keys:
            return None
        for key in self._keys.get(head[0], ()):
            if key in owed:
                return key
        return None
