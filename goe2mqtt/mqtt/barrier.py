"""The order barrier of the retained store (mqtt/retained.py): which changes the broker
has not acknowledged yet, and the wait until those up to a mark are.

Every change is numbered; ``changes`` names every change made so far, and
``settled(barrier)`` waits until the broker acknowledged each change up to it (or a
newer value of the same topic). A command's result goes out only after the states it
reports. Knows nothing but names (topics, family keys).
"""

from __future__ import annotations

import asyncio
import heapq


class OrderBarrier:
    __slots__ = ("_heap", "_owed", "_progress", "changes")

    def __init__(self) -> None:
        self.changes = 0  # changes made so far: the barrier
        # Name -> its oldest change no acknowledged publish covers yet; the heap finds
        # the oldest of all (entries that no longer match _owed are stale).
        self._owed: dict[str, int] = {}
        self._heap: list[tuple[int, str]] = []
        self._progress = asyncio.Event()

    def __contains__(self, name: object) -> bool:
        """Whether a change of the name waits for the broker's acknowledgement."""
        return name in self._owed

    def change(self, name: str) -> int:
        """A change of ``name`` was made: its number."""
        self.changes += 1
        if name not in self._owed:
            self._owe(name, self.changes)
        return self.changes

    def _owe(self, name: str, change: int) -> None:
        self._owed[name] = change
        heap = self._heap
        if len(heap) > 2 * len(self._owed) + 1024:
            # Stale entries leave the heap only from its top, when a result looks: with no
            # result for a day, every change would stay. Rebuilt from what is owed.
            heap[:] = [(seq, owed) for owed, seq in self._owed.items()]
            heapq.heapify(heap)
        else:
            heapq.heappush(heap, (change, name))

    def acknowledged(self, name: str, since: int | None) -> None:
        """The value of ``name`` taken for sending reached the broker (or was refused for
        good); ``since``: the first change made after it was taken (None: none)."""
        if since is None:
            self._owed.pop(name, None)
            if not self._owed:  # nothing owed: the heap holds only stale entries
                self._owed, self._heap = {}, []  # and a start-up's sizes go
        else:  # changed again since it was taken: owed from that change on
            self._owe(name, since)
        self._progress.set()

    def _oldest(self) -> int | None:
        heap = self._heap
        while heap and self._owed.get(heap[0][1]) != heap[0][0]:
            heapq.heappop(heap)  # stale: acknowledged, or owed since a later change
        return heap[0][0] if heap else None

    async def settled(self, barrier: int) -> None:
        """Wait until the broker acknowledged every change up to ``barrier``, or a newer
        value of its topic (or refused it): across reconnects, for as long as it takes."""
        while True:
            oldest = self._oldest()
            if oldest is None or oldest > barrier:
                return
            self._progress.clear()
            await self._progress.wait()
