"""What the MQTT session keeps retained on the broker, and the sender that puts it there.

Publishing is change-only and never waits for the broker: a sender drains the topics
owed, newest value per topic, so a stalled broker costs one entry per topic, not a
backlog; a reconnect owes everything again (the broker may have lost it).

The store also orders the session's other messages after it: ``barrier()`` names every
change made so far, and ``settled(barrier)`` waits until the broker acknowledged each of
them (or a newer value of the same topic). A command's result goes out only after the
states it reports.

Payloads of PACK_FROM bytes or more are kept zlib-compressed: a charger's discovery
configs (~800 bytes each, 100+ of them) halve, and they are only read again to send.
Knows MQTT and nothing of go-e.
"""

from __future__ import annotations

import asyncio
import heapq
import zlib
from collections.abc import Callable
from typing import Any

import aiomqtt
import structlog

from goe2mqtt.mqtt.client import SEND_WINDOW, BrokerStalled, PublishRefused

log = structlog.get_logger()

PACK_FROM = 256


class _Packed(bytes):
    """A retained payload kept compressed."""


def pack(data: bytes) -> bytes:
    return _Packed(zlib.compress(data, 6)) if len(data) >= PACK_FROM else data


def unpack(stored: bytes) -> bytes:
    return zlib.decompress(stored) if isinstance(stored, _Packed) else stored


class RetainedStore:
    def __init__(self, on_refused: Callable[[PublishRefused], None]) -> None:
        self._on_refused = on_refused
        # What the broker should hold, in the order it last changed (b"": clear it).
        self.retained: dict[str, bytes] = {}
        # Topics whose newest value the broker has not acknowledged yet, in the order
        # they last changed -> the first change since the topic was last taken for
        # sending (None: owed again by a reconnect, no change of its own).
        self._dirty: dict[str, int | None] = {}
        self._dirty_added = asyncio.Event()
        self._changes = 0  # changes made so far: the barrier
        # Topic -> its oldest change no acknowledged publish covers yet; the heap finds
        # the oldest of all (entries that no longer match _owed are stale).
        self._owed: dict[str, int] = {}
        self._owed_heap: list[tuple[int, str]] = []
        self._progress = asyncio.Event()

    @property
    def backlog(self) -> int:
        """Topics waiting for the broker (each counts once, however often it changed)."""
        return len(self._dirty)

    def put(self, topic: str, payload: bytes) -> None:
        """Owe ``payload`` to the broker if it differs from what we last gave it."""
        data = pack(payload)
        if self.retained.get(topic) != data:
            self.store(topic, data)

    def store(self, topic: str, data: bytes) -> None:
        """Keep ``data`` (packed) as the topic's retained value and owe it to the broker.

        Re-inserted at the end: a republish goes out in the order things last changed,
        so "online" comes after the states and configs it vouches for.
        """
        self.retained.pop(topic, None)
        self.retained[topic] = data
        self._changes += 1
        if topic not in self._owed:
            self._owe(topic, self._changes)
        self._mark(topic, self._changes)

    def _owe(self, topic: str, change: int) -> None:
        self._owed[topic] = change
        heap = self._owed_heap
        if len(heap) > 2 * len(self._owed) + 1024:
            # Stale entries leave the heap only from its top, when a result looks: with no
            # result for a day, every change would stay. Rebuilt from what is owed.
            heap[:] = [(seq, name) for name, seq in self._owed.items()]
            heapq.heapify(heap)
        else:
            heapq.heappush(heap, (change, topic))

    def owe_everything(self) -> None:
        """Send everything retained again (a reconnect, Home Assistant restarted)."""
        self._dirty = {topic: self._dirty.get(topic) for topic in self.retained}
        self._dirty_added.set()

    def _mark(self, topic: str, change: int | None) -> None:
        first = self._dirty.pop(topic, None)
        self._dirty[topic] = first if first is not None else change
        self._dirty_added.set()

    # --- the order barrier ---------------------------------------------------------------

    def barrier(self) -> int:
        """Every change made so far (for settled())."""
        return self._changes

    def _oldest_owed(self) -> int | None:
        heap = self._owed_heap
        while heap and self._owed.get(heap[0][1]) != heap[0][0]:
            heapq.heappop(heap)  # stale: acknowledged, or owed since a later change
        return heap[0][0] if heap else None

    async def settled(self, barrier: int) -> None:
        """Wait until the broker acknowledged every change up to ``barrier``, or a newer
        value of its topic (or refused it): across reconnects, for as long as it takes."""
        while True:
            oldest = self._oldest_owed()
            if oldest is None or oldest > barrier:
                return
            self._progress.clear()
            await self._progress.wait()

    def _acknowledged(self, topic: str) -> None:
        """The value taken for sending reached the broker (or was refused for good)."""
        since = self._dirty.get(topic)
        if since is None:
            self._owed.pop(topic, None)
        else:  # changed again since it was taken: owed from that change on
            self._owe(topic, since)
        self._progress.set()

    # --- sending ---------------------------------------------------------------------------

    def _take(self) -> tuple[str, bytes]:
        topic = next(iter(self._dirty))
        del self._dirty[topic]
        return topic, self.retained.get(topic, b"")

    async def send(self, client: aiomqtt.Client, ack_timeout: float) -> None:
        """Drain the owed topics while connected; raises BrokerStalled or MqttError."""
        window = asyncio.Semaphore(SEND_WINDOW)
        failure: asyncio.Future[Any] = asyncio.get_running_loop().create_future()
        sends: set[asyncio.Task[None]] = set()
        delivered = [0]  # acknowledged since the last batch was logged
        inflight = [0]

        async def send(topic: str, data: bytes) -> None:
            try:
                await client.publish(topic, unpack(data), qos=1, retain=True, timeout=ack_timeout)
            except PublishRefused as exc:
                self._on_refused(exc)  # owed again at the next connect, never taken as sent
                self._acknowledged(topic)  # but no barrier waits for it
            except (asyncio.CancelledError, aiomqtt.MqttError) as exc:
                if topic not in self._dirty and self.retained.get(topic) == data:
                    self._mark(topic, None)  # not known to have arrived: still owed
                if isinstance(exc, asyncio.CancelledError):
                    raise
                if not failure.done():
                    timed_out = "timed out" in str(exc)
                    failure.set_exception(
                        BrokerStalled(f"no PUBACK within {ack_timeout:.0f} s") if timed_out else exc
                    )
            else:
                delivered[0] += 1
                self._acknowledged(topic)
                if data == b"" and self.retained.get(topic) == b"":
                    del self.retained[topic]  # cleared: nothing to republish
            finally:
                window.release()
                inflight[0] -= 1
                if not inflight[0] and not self._dirty and delivered[0]:
                    log.debug("mqtt_batch_sent", messages=delivered[0])
                    delivered[0] = 0

        try:
            while True:
                if failure.done():
                    failure.result()
                if not self._dirty:
                    self._dirty_added.clear()
                    waiter: asyncio.Future[Any] = asyncio.ensure_future(self._dirty_added.wait())
                    await asyncio.wait({waiter, failure}, return_when=asyncio.FIRST_COMPLETED)
                    waiter.cancel()
                    continue
                await window.acquire()
                if not self._dirty:
                    window.release()
                    continue
                inflight[0] += 1
                task = asyncio.create_task(send(*self._take()))
                sends.add(task)
                task.add_done_callback(sends.discard)
        finally:
            for task in list(sends):
                task.cancel()
            if not failure.done():
                failure.cancel()
            else:
                failure.exception()  # retrieved: no "never retrieved" warning

    async def flush(self, client: aiomqtt.Client, ack_timeout: float) -> None:
        """Send what is still owed (on a clean stop), one by one."""
        while self._dirty:
            topic, data = self._take()
            try:
                await client.publish(topic, unpack(data), qos=1, retain=True, timeout=ack_timeout)
            except PublishRefused as exc:
                self._on_refused(exc)
            self._acknowledged(topic)
