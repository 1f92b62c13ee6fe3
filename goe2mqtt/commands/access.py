"""How the command runner sees its charger: a narrow view, and the transport's set.

charger.loop.Charger lends the view; the runner (commands.runner) changes nothing of
the charger's own through it.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Mapping
from contextlib import AbstractAsyncContextManager
from typing import Any, Protocol

from goe2mqtt.commands.payloads import SetCall


class ChargerAccess(Protocol):
    """What the runner sees of its charger (charger.loop.Charger lends it)."""

    @property
    def status(self) -> Mapping[str, Any]:
        """The latest values the charger showed."""
        ...

    @property
    def polled(self) -> bool:
        """Whether this run has asked the charger at least once."""
        ...

    def unreachable(self) -> str | None:
        """Why the charger cannot be reached now (offline); None while it can."""
        ...

    @property
    def hold_off(self) -> float:
        """Seconds the charger's API asked us to wait (Retry-After); 0 when it did not."""
        ...

    @property
    def lock(self) -> AbstractAsyncContextManager[None]:
        """One conversation with the charger at a time."""
        ...

    @property
    def pushed(self) -> int:
        """Messages the charger pushed so far (0 for one that is polled): a mark for
        read_back's ``since``."""
        ...

    async def refresh(self) -> bool:
        """Read the charger now (taking the lock); False if it did not answer."""
        ...

    async def read_back(self, since: int | None = None) -> bool:
        """refresh() for a caller that holds the lock; a message pushed after the
        ``since``-th counts as read back (None: only one that comes now)."""
        ...

    def poll_soon(self, delay: float = 0.0) -> None:
        """Look again (every key) after ``delay`` seconds."""
        ...


SetCallSender = Callable[[SetCall], Awaitable[object]]
