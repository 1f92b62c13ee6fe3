"""What the retained store owes the broker: two queues, changes first.

A change (a charger's value, a command's state) goes out before anything sent only
again: a reconnect's or Home Assistant's re-send of everything, a correction of a topic
someone else overwrote. A change made during the re-send of a thousand chargers' 132 000
discovery configs waited behind all of it (17 s at p50). Each queue keeps the order
things were owed in; a name is in one queue at most. Knows MQTT topics and nothing else.

Each queue is an OrderedDict: its first entry is found in one step, however many were
taken from its front. A dict walks past every entry deleted from its front until it
grows again: draining 100 000 names visited ~5 000 million slots (3 s of CPU).
"""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Iterator


class Owed:
    """Names (topics, family keys) owed to the broker: changes, then re-sends."""

    __slots__ = ("_again", "_back", "_changes", "_head")

    def __init__(self) -> None:
        # name -> the first change since it was last taken (None: owed again by a
        # reconnect, an undelivered publish, with no change of its own).
        self._changes: OrderedDict[str, int | None] = OrderedDict()
        # Sent only again: after every change.
        self._again: OrderedDict[str, None] = OrderedDict()
        # What peek() found, kept while nothing owed since comes before it (None: look).
        self._head: tuple[str, bool] | None = None
        # Names given back (back()) at the front of their queue, still there: the order
        # each had been taken in (a window's worth at most).
        self._back: dict[str, int] = {}

    def __contains__(self, name: object) -> bool:
        return name in self._changes or name in self._again

    def __len__(self) -> int:
        return len(self._changes) + len(self._again)

    def __bool__(self) -> bool:
        return bool(self._changes) or bool(self._again)

    def __iter__(self) -> Iterator[str]:
        yield from self._changes
        yield from self._again

    def changes(self) -> Iterator[str]:
        """The names owed as changes, in order (ahead of every re-send)."""
        yield from self._changes

    def is_change(self, name: str) -> bool:
        """Whether the name waits in the changes' queue (ahead of every re-send)."""
        return name in self._changes

    @property
    def resending(self) -> bool:
        """Whether a re-send is still owed (nothing but changes is left otherwise)."""
        return bool(self._again)

    def since(self, name: str) -> int | None:
        """The first change owed since the name was last taken (None: none)."""
        return self._changes.get(name)

    def change(self, name: str, change: int | None) -> None:
        """Owe the name with the changes, last, keeping its first change not yet taken."""
        head = self._head
        if head is not None and (head[0] == name or not head[1]):
            self._head = None  # the head moves back, or a re-send's: this comes first
        first = self._changes.pop(name, None)
        self._again.pop(name, None)
        self._back.pop(name, None)
        self._changes[name] = first if first is not None else change

    def changed_again(self, name: str, change: int) -> None:
        """A name owed as a change changed again: it keeps its place (what is sent is
        built when taken, the newest then), and its first change not yet taken. Moved
        last, a charger's states went behind the "online" owed meanwhile."""
        if self._changes[name] is None:
            self._changes[name] = change

    def back(self, name: str, taken: int, *, change: bool) -> None:
        """Owe a name taken for sending again where it was (it did not arrive): ahead of
        everything owed since it was taken, behind what was given back and had been
        taken before it (``taken``: the order it was taken in); with the changes or the
        re-sends. Appended, a connection lost under a charger's first states sent its
        "online" (owed after them, not taken yet) ahead of them all."""
        if name in self._changes or name in self._again:
            return
        queue: OrderedDict[str, int | None] | OrderedDict[str, None]
        queue = self._changes if change else self._again
        back = self._back
        ahead = []  # given back before, taken before it: they stay in front
        for other in queue:  # walks only the names given back, at the front
            if back.get(other, taken) >= taken:
                break
            ahead.append(other)
        queue[name] = None
        queue.move_to_end(name, last=False)
        for other in reversed(ahead):
            queue.move_to_end(other, last=False)
        back[name] = taken
        self._head = None

    def again(self, name: str) -> bool:
        """Owe the name with the re-sends unless it is owed already; whether it was added
        (last of all: the head stays)."""
        if name in self._changes or name in self._again:
            return False
        self._again[name] = None
        return True

    def peek(self) -> tuple[str, bool] | None:
        """The name take() would return, and whether it is a change; None: nothing."""
        head = self._head
        if head is None:
            if self._changes:
                head = next(iter(self._changes)), True
            elif self._again:
                head = next(iter(self._again)), False
            self._head = head
        return head

    def pull(self, name: str) -> None:
        """Take ``name`` now, out of its turn (it must be owed): what vouches for it is
        next (mqtt/vouches.py)."""
        self._head = None
        self._back.pop(name, None)
        if name in self._changes:
            del self._changes[name]
        else:
            del self._again[name]

    def take(self) -> str | None:
        """The next name owed, changes first; None when nothing is."""
        head = self.peek()
        self._head = None
        if head is None:
            return None
        name, change = head
        if self._back:
            self._back.pop(name, None)
        if change:
            del self._changes[name]
            if not self._changes:  # a dict keeps the table it grew to: a start-up's
                self._changes = OrderedDict()  # ~100 000 topics would stay in memory
        else:
            del self._again[name]
            if not self._again:
                self._again = OrderedDict()
        return name
