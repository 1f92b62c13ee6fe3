"""The seam every way of reaching a charger plugs into, and its vocabulary.

The charger loop and the command runner ask a Transport for the charger's values and
send it writes; they do not know how these travel (HTTP API v2 polling, the charger's
websocket, the cloud's websocket, the charger's own MQTT). A Transport whose charger
pushes is also a PushTransport; goe/factory builds each from a charger's settings.

Every failure is a GoeError whose message is safe to log; a TransientError is worth
one more try, and the runner never resends an action (rst) after one.

A charger on its own MQTT publishes to a broker this layer does not know (the MQTT
layer does): the bridge hands the factory a ChargerBroker, and the charger's topics
reach its transport through it.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Collection, Mapping, Sequence
from typing import Any, Protocol, runtime_checkable

from goe2mqtt.util.values import JsonValue

# --- the errors -----------------------------------------------------------------------


class GoeError(Exception):
    """A request to the charger failed; ``str(err)`` is the reason, safe to log."""

    #: True when the answer proves the charger is unreachable right now
    #: (no need to wait for more failures before reporting it offline).
    offline_now = False


class ChargerOffline(GoeError):
    """403 / 404 / success=false: the cloud says the charger is not there."""

    offline_now = True


class AuthFailed(GoeError):
    """401: the token was refused."""

    offline_now = True


class Rejected(GoeError):
    """The charger (or the broker on its way) refused a write."""


class TransientError(GoeError):
    """Timeout, connection failure, 5xx or a garbled answer: worth trying again."""


class RateLimited(TransientError):
    """429, or 503 with Retry-After: ask again, but not before ``retry_after`` seconds."""

    def __init__(self, message: str, retry_after: float | None) -> None:
        super().__init__(message)
        self.retry_after = retry_after


# --- asking and writing -----------------------------------------------------------------


class Transport(Protocol):
    async def status(self, keys: Collection[str]) -> dict[str, Any]:
        """The charger's current values for ``keys`` (every key when empty)."""
        ...

    async def set(self, values: Mapping[str, JsonValue]) -> dict[str, Any]:
        """Write ``values``; the charger's answer per key. The answer is not the proof:
        the caller confirms a write by the status that follows it."""
        ...


# --- a charger that pushes --------------------------------------------------------------

# (message values, full) -> None: full replaces the status, else values are a delta.
Listener = Callable[[Mapping[str, Any], bool], Awaitable[None]]
# Called when whether the charger pushes (or why not) changed.
StateListener = Callable[[], None]
# What of a message to hand on (values, full), or None for nothing: decided per frame.
Keep = Callable[[Mapping[str, Any], bool], Mapping[str, Any] | None]


def as_is(values: Mapping[str, Any], full: bool) -> Mapping[str, Any]:
    """A Keep that hands on every message whole."""
    return values


@runtime_checkable
class PushTransport(Transport, Protocol):
    """A Transport whose charger also pushes (the charger loop's view of it)."""

    @property
    def live(self) -> bool:
        """Pushing now: values arrive as they change, no polling needed."""
        ...

    @property
    def settling(self) -> bool:
        """The first connection is under way (its turn, its handshake, its hash, its full
        status), neither live nor failed yet: no need to poll instead."""
        ...

    @property
    def connection(self) -> str:
        """What serves the charger and why, for the Connection entity."""
        ...

    @property
    def skipped(self) -> Mapping[str, int]:
        """What the peer sent that was not kept, by reason (bridge/info shows it)."""
        ...

    async def push(self, listener: Listener, on_state: StateListener) -> None:
        """Keep the push connection open until cancelled."""
        ...


@runtime_checkable
class AskingTransport(PushTransport, Protocol):
    """A pushing Transport that can also be asked, another way (HTTP), while it pushes."""

    async def ask(self, keys: Collection[str]) -> dict[str, Any] | None:
        """The charger's values now, not as last pushed; None when there is no one to ask."""
        ...


# --- the broker a charger publishes to ----------------------------------------------------

# (topic, payload) -> None, in the broker client's callback: cheap, never raises.
TopicTaker = Callable[[str, bytes], None]


class ChargerBroker(Protocol):
    """The MQTT broker a charger publishes its own topics to, as this layer sees it."""

    def subscribe(self, filters: Sequence[str], take: TopicTaker) -> None:
        """Hand every message matching ``filters`` to ``take`` (from the next connect on)."""
        ...

    async def publish(self, topic: str, payload: bytes) -> None:
        """Publish a write; returns once the broker has it. Raises TransientError (not
        known to be sent, with the reason) or Rejected (the broker refused it)."""
        ...
