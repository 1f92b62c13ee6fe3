"""The retained store's sender (mqtt/retained.py): what is owed, drained while connected.

SEND_WINDOW publishes await their PUBACK at once (fewer if the broker's Receive Maximum
says so, mqtt/in_flight.py); each one taken is the store's newest for its topic. Knows
MQTT and nothing of go-e.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from typing import Any, Protocol

import aiomqtt
import structlog

from goe2mqtt.mqtt.client import SEND_WINDOW, BrokerStalled, PublishRefused
from goe2mqtt.mqtt.families import Family, SendingFamily, Taken
from goe2mqtt.mqtt.pace import Pace
from goe2mqtt.mqtt.packing import PACK_AFTER, Packing, unpack

log = structlog.get_logger()

# Of a clean stop's flush, what the changes owed may take at the ceiling raised for them:
# the rest is for their PUBACKs and a loop late with the stop's other work.
FLUSH_PACED_SHARE = 0.8


class RetainedStore(Protocol):
    """What the sender uses of mqtt/retained.RetainedStore (which imports this module)."""

    retained: dict[str, bytes | Family]
    packing: Packing
    pace: Pace
    ceiling: Pace
    _sending: SendingFamily | None
    _dirty_added: asyncio.Event
    _repaced: asyncio.Event
    _on_refused: Callable[[PublishRefused], None]

    def _delivered(self, topic: str, sending: SendingFamily | None) -> None: ...

    def _undelivered(self, topic: str, data: bytes, sending: SendingFamily | None) -> None: ...

    @property
    def changes_owed(self) -> int: ...

    def _owes(self) -> bool: ...

    def _bulk(self) -> int: ...

    def _take(self) -> Taken | None: ...

    def barrier(self) -> int: ...

    async def settled(self, barrier: int) -> None: ...


async def send(
    store: RetainedStore, client: aiomqtt.Client, ack_timeout: float, window: int = SEND_WINDOW
) -> None:
    """Drain the store's owed topics while connected, at most ``window`` (SEND_WINDOW,
    or less: what the connection lets await an answer) at once, so none waits queued
    inside paho, its ack_timeout running; raises BrokerStalled or MqttError."""
    slots = asyncio.Semaphore(max(1, min(SEND_WINDOW, window)))
    failure: asyncio.Future[Any] = asyncio.get_running_loop().create_future()
    sends: set[asyncio.Task[None]] = set()
    delivered = [0]  # acknowledged since the last batch was logged
    inflight = [0]

    async def publish(topic: str, data: bytes, sending: SendingFamily | None) -> None:
        try:
            await client.publish(topic, unpack(data), qos=1, retain=True, timeout=ack_timeout)
        except PublishRefused as exc:
            store._on_refused(exc)  # owed again at the next connect, never taken as sent
            store._delivered(topic, sending)  # but no barrier waits for it
        except (asyncio.CancelledError, aiomqtt.MqttError) as exc:
            store._undelivered(topic, data, sending)
            if isinstance(exc, asyncio.CancelledError):
                raise
            if not failure.done():
                timed_out = "timed out" in str(exc)
                failure.set_exception(
                    BrokerStalled(f"no PUBACK within {ack_timeout:.0f} s") if timed_out else exc
                )
        else:
            delivered[0] += 1
            store._delivered(topic, sending)
            if data == b"" and store.retained.get(topic) == b"":
                del store.retained[topic]  # cleared: nothing to republish
        finally:
            slots.release()
            inflight[0] -= 1
            if not inflight[0] and not store._owes() and delivered[0]:
                log.debug("mqtt_batch_sent", messages=delivered[0])
                delivered[0] = 0

    async def until_set(event: asyncio.Event, within: float) -> None:
        """Until ``event`` is set anew (something more owed, the ceiling's rate changed)
        or the connection failed: ``within`` s at most."""
        event.clear()
        waiter: asyncio.Future[Any] = asyncio.ensure_future(event.wait())
        try:
            first = asyncio.FIRST_COMPLETED
            await asyncio.wait({waiter, failure}, timeout=within, return_when=first)
        finally:
            waiter.cancel()  # the sender cancelled meanwhile too

    try:
        while True:
            if failure.done():
                failure.result()
            if not store._owes():
                await until_set(store._dirty_added, PACK_AFTER)
                if store.packing.due():  # quiet: what stayed unchanged is packed now
                    store.packing.sweep(store.retained)
                continue
            await slots.acquire()
            if store._sending is None:  # a family's members never wait in between
                wait = store.ceiling.delay()
                if wait > 0.0:
                    # What is owed meanwhile changes nothing: no publish may go yet. A
                    # new rate does (a stop's flush): a family's debt at 10 a second
                    # held the sender 13 s, past the flush's window.
                    slots.release()
                    await until_set(store._repaced, wait)
                    continue
            bulk = store._bulk()
            if bulk:
                wait = store.pace.delay()
                if wait > 0.0:
                    # Woken by what is owed meanwhile: a change goes at once, ahead of a
                    # re-send (mqtt/owed.py); behind a start-up's family it keeps its place.
                    slots.release()
                    await until_set(store._dirty_added, wait)
                    continue
                store.pace.spend(bulk)
            taken = store._take()
            if taken is None:
                slots.release()
                continue
            store.ceiling.spend(1)
            inflight[0] += 1
            task = asyncio.create_task(publish(*taken))
            sends.add(task)
            task.add_done_callback(sends.discard)
    finally:
        for task in list(sends):
            task.cancel()
        if not failure.done():
            failure.cancel()
        else:
            failure.exception()  # retrieved: no "never retrieved" warning


async def flush(store: RetainedStore, sending: asyncio.Task[None], *, within: float) -> None:
    """Let ``sending`` (send()'s task, on the connection that stops) go on for ``within``
    seconds at most, or until every change made before the call is acknowledged; then
    end it. The publishes it has in flight are awaited, not sent again.

    The bulk pace is lifted: those seconds are for what is owed before the offline. At
    start-up that is bulk (owed as changes, ahead of the chargers' offline the goodbye
    stores): held for tokens, the offline stayed unsaid and "online" retained once the
    bridge stopped. The ceiling (mqtt.max_rate) is raised only as far as the changes owed
    now (the offlines last) need to go within FLUSH_PACED_SHARE of the window, never
    below it, and is back after. Kept, with its burst spent, 200 chargers' offlines
    needed 20 s at 10 a second and the flush has 3: the broker kept "online" for those
    left. Unpaced, a start-up's configs outran a subscriber and the broker dropped the
    offlines after them for it. The broker's retained copy outlives the stop, a slow
    subscriber's live one does not: raised as far as the offlines need, no further."""
    paced, store.pace = store.pace, Pace(0.0)
    ceiling = store.ceiling
    rate = ceiling.fit(store.changes_owed, within * FLUSH_PACED_SHARE)
    store._dirty_added.set()  # a sender waiting for tokens looks again
    store._repaced.set()  # ... at the ceiling too
    settled = asyncio.create_task(store.settled(store.barrier()))
    try:
        first = asyncio.FIRST_COMPLETED
        await asyncio.wait({sending, settled}, timeout=within, return_when=first)
    finally:
        for task in (sending, settled):
            task.cancel()
        try:
            await asyncio.gather(sending, settled, return_exceptions=True)
        finally:
            store.pace = paced
            ceiling.restore(rate)
