"""How many live streams (/events) may be open at once: http.max_streams.

Each open stream looks at its page every second (web/live.py): 900 of them cost the
bridge ~7 % of a CPU, and nothing but the token (or local access) bounded them. A
stream beyond the limit is refused (503, Retry-After) rather than closing the oldest:
the pages already open - a wall display, the operator's own tab - keep theirs, and an
evicted page's script would reconnect within a second and evict another, without end.
"""

from __future__ import annotations

from dataclasses import dataclass

RETRY_AFTER = 30  # s: what a refused page (and Retry-After) waits before it asks again


@dataclass
class StreamSlots:
    """The open streams, the limit, and how many were refused since the start."""

    limit: int
    open: int = 0
    refused: int = 0

    def take(self) -> bool:
        """A slot for a new stream, or False (counted as refused) when all are taken."""
        if self.open >= self.limit:
            self.refused += 1
            return False
        self.open += 1
        return True

    def give_back(self) -> None:
        self.open -= 1

    @property
    def full(self) -> bool:
        return self.open >= self.limit

    def text(self) -> str:
        """What the page's header says: "3 of 64"."""
        return f"{self.open} of {self.limit}"
