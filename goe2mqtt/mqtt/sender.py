"""The retained store's sender (mqtt/retained.py): what is owed, drained while connected.

SEND_WINDOW publishes await their PUBACK at once; each one taken is the store's newest
for its topic. An answer takes the next owed topic and hands it to the client there
and then, in the callback that read the PUBACK: at a fleet's start or restart the
event loop is saturated and each of its turns long, and a slot that waited for the
tasks around it (one woken by aiomqtt's wait for the PUBACK, the publish's own, the
sender's woken by the window) took ~10 turns of the loop a message; now ~5, and the
window drains 2-3x as fast on such a loop (bench/sender_drain.py).
Knows MQTT and nothing of go-e.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable
from typing import Any, Protocol

import aiomqtt
import structlog

from goe2mqtt.mqtt.client import SEND_WINDOW, BrokerStalled, PublishRefused
from goe2mqtt.mqtt.families import Family, SendingFamily, Taken
from goe2mqtt.mqtt.packing import PACK_AFTER, Packing, unpack

log = structlog.get_logger()

# What became of a publish: None, the broker acknowledged it; a str, the broker's
# refusal (its reason); an exception, it failed (the connection ended).
Answer = Callable[[int, "str | BaseException | None"], None]


class AckedPublisher(Protocol):
    """What the sender uses of the session's client (mqtt/session_client.py)."""

    def publish_acked(self, topic: str, payload: bytes, answer: Answer) -> int:
        """Hand a retained QoS 1 message over; ``answer(packet id, ...)`` once, later.
        Raises aiomqtt.MqttError if it cannot be handed over."""
        ...


class RetainedStore(Protocol):
    """What the sender uses of mqtt/retained.RetainedStore (which imports this module)."""

    retained: dict[str, bytes | Family]
    packing: Packing
    _dirty_added: asyncio.Event
    _on_refused: Callable[[PublishRefused], None]

    def _delivered(self, topic: str, sending: SendingFamily | None) -> None: ...

    def _undelivered(self, topic: str, data: bytes, sending: SendingFamily | None) -> None: ...

    def _owes(self) -> bool: ...

    def _take(self) -> Taken | None: ...

    def barrier(self) -> int: ...

    async def settled(self, barrier: int) -> None: ...


class _Flight:
    """The publishes awaiting their PUBACK; an answer refills the window at once."""

    def __init__(self, store: RetainedStore, client: AckedPublisher) -> None:
        self._store, self._client = store, client
        # packet id -> topic, payload, family, when handed over (oldest first)
        self.waiting: dict[int, tuple[str, bytes, SendingFamily | None, float]] = {}
        self.failure: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self.room = asyncio.Event()  # the window is no longer full
        self._delivered = 0  # acknowledged since the last batch was logged
        self._ended = False

    @property
    def full(self) -> bool:
        return len(self.waiting) >= SEND_WINDOW

    def oldest(self) -> float | None:
        """When the longest-waiting publish was handed over (time.monotonic())."""
        for _, _, _, at in self.waiting.values():
            return at
        return None

    def fill(self) -> None:
        """Hand over what is owed while the window has room."""
        store = self._store
        while not self.full and not self._ended and not self.failure.done():
            taken = store._take()
            if taken is None:
                return
            topic, data, sending = taken
            try:
                mid = self._client.publish_acked(topic, unpack(data), self._answered)
            except aiomqtt.MqttError as exc:
                store._undelivered(topic, data, sending)
                self.fail(exc)
                return
            self.waiting[mid] = (topic, data, sending, time.monotonic())

    def fail(self, exc: BaseException) -> None:
        if not self.failure.done():
            self.failure.set_exception(exc)

    def _answered(self, mid: int, outcome: str | BaseException | None) -> None:
        entry = self.waiting.pop(mid, None)
        if entry is None:
            return  # this flight ended (its publishes owed again) before the answer
        store = self._store
        topic, data, sending, _ = entry
        try:
            if isinstance(outcome, BaseException):
                store._undelivered(topic, data, sending)
                self.fail(outcome)
                return
            if outcome is not None:
                store._on_refused(PublishRefused(topic, outcome))  # owed at the next connect
                store._delivered(topic, sending)  # but no barrier waits for it
            else:
                self._delivered += 1
                store._delivered(topic, sending)
                if data == b"" and store.retained.get(topic) == b"":
                    del store.retained[topic]  # cleared: nothing to republish
            self.fill()
        except Exception as exc:  # called by the client's read: a bug here ends the connection
            log.exception("mqtt_answer_not_taken", topic=topic)
            self.fail(exc)
            return
        if not self.full:
            self.room.set()
        if not self.waiting and not store._owes() and self._delivered:
            log.debug("mqtt_batch_sent", messages=self._delivered)
            self._delivered = 0

    def end(self) -> None:
        """The connection's sending is over: what awaits its PUBACK is owed again."""
        self._ended = True
        waiting, self.waiting = self.waiting, {}
        for topic, data, sending, _ in waiting.values():
            self._store._undelivered(topic, data, sending)
        if not self.failure.done():
            self.failure.cancel()
        else:
            self.failure.exception()  # retrieved: no "never retrieved" warning


async def send(store: RetainedStore, client: AckedPublisher, ack_timeout: float) -> None:
    """Drain the store's owed topics while connected; raises BrokerStalled or MqttError."""
    flight = _Flight(store, client)
    failure = flight.failure
    try:
        while True:
            if failure.done():
                failure.result()
            # Cleared first: a change made from here on wakes the wait below.
            store._dirty_added.clear()
            flight.room.clear()
            flight.fill()
            oldest = flight.oldest()
            timeout = PACK_AFTER
            if oldest is not None:
                left = oldest + ack_timeout - time.monotonic()
                if left <= 0:
                    raise BrokerStalled(f"no PUBACK within {ack_timeout:.0f} s")
                timeout = min(timeout, left)
            # Full: answers refill it; woken when it has room again (or fails, or stalls).
            wake = flight.room if flight.full else store._dirty_added
            waiter: asyncio.Future[Any] = asyncio.ensure_future(wake.wait())
            try:
                await asyncio.wait({waiter, failure}, timeout=timeout,
                                   return_when=asyncio.FIRST_COMPLETED)  # fmt: skip
            finally:
                waiter.cancel()
            if not flight.waiting and not store._owes() and store.packing.due():
                store.packing.sweep(store.retained)  # quiet: what stayed unchanged is packed
    finally:
        flight.end()


async def flush(store: RetainedStore, sending: asyncio.Task[None], *, within: float) -> None:
    """Let ``sending`` (send()'s task, on the connection that stops) go on for ``within``
    seconds at most, or until every change made before the call is acknowledged; then
    end it. The publishes it has in flight are awaited, not sent again."""
    settled = asyncio.create_task(store.settled(store.barrier()))
    try:
        first = asyncio.FIRST_COMPLETED
        await asyncio.wait({sending, settled}, timeout=within, return_when=first)
    finally:
        for task in (sending, settled):
            task.cancel()
        await asyncio.gather(sending, settled, return_exceptions=True)
