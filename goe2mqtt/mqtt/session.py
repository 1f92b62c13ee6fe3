"""One resilient MQTT session: connect, reconnect, remember what is retained.

Knows MQTT and nothing of go-e. Retained topics are kept in a store: publishing is
change-only, never waits for the broker (a sender drains the store, newest value per
topic, so a stalled broker costs one entry per topic, not a backlog), and a
reconnect republishes everything the broker may have lost. Inbound messages are
handed over before the broker is acknowledged, so what the handler stored survives
any crash.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections import Counter
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

import aiomqtt
import structlog
from paho.mqtt.subscribeoptions import SubscribeOptions

from goe2mqtt.mqtt.client import (
    SEND_WINDOW,
    BrokerStalled,
    InboundMessage,
    MessageHandler,
    MqttOptions,
    PublishRefused,
    SessionTakenOver,
    connect_cause,
    disconnect_cause,
    hand_over_before_ack,
    is_takeover,
    new_client,
    until_quiet,
)
from goe2mqtt.mqtt.retained import pack as _pack
from goe2mqtt.mqtt.retained import unpack as _unpack
from goe2mqtt.mqtt.topics import OFFLINE, ONLINE
from goe2mqtt.util.aio import wait_until_set

__all__ = [
    "InboundMessage",
    "MessageHandler",
    "MqttOptions",
    "MqttSession",
    "PublishRefused",
    "Subscription",
]

log = structlog.get_logger()

RECONNECT_DELAYS = (1.0, 2.0, 5.0, 10.0, 30.0)
SHUTDOWN_TIMEOUT = 5.0
# Connections lost this soon after they were made, this many times in a row: someone
# else keeps taking them (the same client_id elsewhere) or the broker refuses us.
FLAP_SECONDS = 10.0
FLAP_COUNT = 3
MIN_ACK_TIMEOUT = 5.0


@dataclass(frozen=True)
class Subscription:
    topic: str
    qos: int = 1
    # MQTT 5: the broker does not send us back what we publish there ourselves.
    no_local: bool = False
    # Only for what is retained there: unsubscribed on each connect once the retained
    # messages stop coming, before we publish. Echoes of our own publishes would
    # otherwise come back all the time, and aiomqtt stalls our QoS 1 publishes while
    # it reads them (measured: 1.3 s for one charger's first 60 publishes, 30 ms without).
    retained_only: bool = False
    # MQTT 5: a message published with retain keeps the flag on its way to us, so a
    # retained publish (or someone clearing one) is never taken for a live command.
    retain_as_published: bool = False
    # Never quiet (a charger publishing its own values): subscribed only after the
    # retained messages of the others were read, which waits for a quiet moment.
    stream: bool = False


class MqttSession:
    def __init__(
        self,
        options: MqttOptions,
        subscriptions: Sequence[Subscription],
        *,
        reconnect_delays: Sequence[float] = RECONNECT_DELAYS,
        on_connection: Callable[[bool], None] | None = None,
        on_new_session: Callable[[], None] = lambda: None,
    ) -> None:
        self._options = options
        self._on_connection = on_connection
        self._on_new_session = on_new_session
        self._subscriptions = tuple(subscriptions)
        self._reconnect_delays = tuple(reconnect_delays)
        # What the broker should hold, in the order it last changed (b"": clear it).
        self._retained: dict[str, bytes] = {}
        # Topics whose newest value has not been acknowledged by the broker yet.
        self._dirty: dict[str, None] = {}
        self._dirty_added = asyncio.Event()
        self._client: aiomqtt.Client | None = None
        self._lost: asyncio.Future[None] | None = None  # done when the connection ends
        self._stopping = asyncio.Event()
        self._final: list[tuple[str, bytes]] = []
        self.connections = 0
        self.disconnects: Counter[str] = Counter()  # cause -> connections lost or failed
        # Publishes the broker refused (MQTT 5 reason code >= 0x80): topic -> reason.
        self.refused: dict[str, str] = {}
        self.refused_count = 0
        # A publish not acknowledged within this long means the broker is gone or
        # frozen (TCP alone can take minutes to notice a SIGSTOPped broker).
        self.ack_timeout = max(float(options.keepalive), MIN_ACK_TIMEOUT)

    @property
    def connected(self) -> bool:
        return self._client is not None

    @property
    def options(self) -> MqttOptions:
        return self._options

    def availability_seen(self, payload: bytes) -> None:
        """Someone else wrote our availability (a demo, a stray test, a copied config):
        while we are connected we are online, so say it again."""
        if payload == ONLINE.encode() or self._client is None or self._stopping.is_set():
            return
        log.warning(
            "availability_overwritten",
            topic=self._options.availability_topic,
            payload=payload[:40].decode("utf-8", "replace"),
            action="published online again",
        )
        self._store(self._options.availability_topic, ONLINE.encode())

    @property
    def backlog(self) -> int:
        """Retained topics waiting for the broker (each counts once, however often it changed)."""
        return len(self._dirty)

    def _set_client(self, client: aiomqtt.Client | None) -> None:
        was_connected = self.connected
        self._client = client
        if self._on_connection is not None and self.connected != was_connected:
            self._on_connection(self.connected)

    # --- publishing -----------------------------------------------------------------

    def _refused(self, exc: PublishRefused) -> None:
        """A publish the broker will not take: an error once per topic, counted."""
        self.refused_count += 1
        if exc.topic not in self.refused:
            log.error(
                "mqtt_publish_refused",
                topic=exc.topic,
                reason=exc.reason,
                hint="check the broker's ACL for this client's user",
            )
            if len(self.refused) >= 100:
                self.refused.pop(next(iter(self.refused)))
        self.refused[exc.topic] = exc.reason

    def refused_info(self) -> dict[str, Any]:
        return {"count": self.refused_count, "topics": dict(list(self.refused.items())[-10:])}

    async def publish_retained(self, topic: str, payload: str | bytes) -> None:
        """Publish if the payload differs from what we last published there.

        Returns at once: the sender delivers it, newest value first per topic.
        """
        data = _pack(payload.encode() if isinstance(payload, str) else payload)
        if self._retained.get(topic) != data:
            self._store(topic, data)

    def _store(self, topic: str, data: bytes) -> None:
        """Keep ``data`` as the topic's retained value and owe it to the broker.

        Re-inserted at the end: a republish goes out in the order things last changed,
        so "online" comes after the states and configs it vouches for.
        """
        self._retained.pop(topic, None)
        self._retained[topic] = data
        self._mark(topic)

    async def clear_retained(self, topic: str) -> None:
        """Remove a retained message from the broker and forget it."""
        await self.publish_retained(topic, b"")

    async def publish(self, topic: str, payload: str | bytes, *, qos: int = 1) -> bool:
        """A one-off, non-retained message; True once the broker acknowledged it.

        Raises PublishRefused when the broker answered that it will not take it."""
        data = payload.encode() if isinstance(payload, str) else payload
        client, lost = self._client, self._lost
        if client is None or lost is None:
            return False
        # aiomqtt leaves a publish waiting for its PUBACK after the connection died:
        # it ends with the connection instead, and is sent again on the next one.
        sending = asyncio.ensure_future(
            client.publish(topic, data, qos=qos, retain=False, timeout=self.ack_timeout)
        )
        await asyncio.wait({sending, lost}, return_when=asyncio.FIRST_COMPLETED)
        if not sending.done():
            sending.cancel()
            await asyncio.gather(sending, return_exceptions=True)
            return False
        try:
            sending.result()
        except PublishRefused as exc:
            self._refused(exc)
            raise
        except aiomqtt.MqttError as exc:
            log.debug("mqtt_publish_failed", topic=topic, error=str(exc))
            return False
        return True

    async def republish_retained(self) -> None:
        """Send everything retained again (Home Assistant restarted). Calls coalesce."""
        self._dirty = dict.fromkeys(self._retained)
        self._dirty_added.set()

    def _mark(self, topic: str) -> None:
        self._dirty.pop(topic, None)
        self._dirty[topic] = None
        self._dirty_added.set()

    async def _send_dirty(self, client: aiomqtt.Client) -> None:
        """Drain the dirty topics while connected; raises BrokerStalled or MqttError."""
        window = asyncio.Semaphore(SEND_WINDOW)
        failure: asyncio.Future[Any] = asyncio.get_running_loop().create_future()
        sends: set[asyncio.Task[None]] = set()
        delivered = [0]  # acknowledged since the last batch was logged
        inflight = [0]

        async def send(topic: str, data: bytes) -> None:
            try:
                await client.publish(
                    topic, _unpack(data), qos=1, retain=True, timeout=self.ack_timeout
                )
            except PublishRefused as exc:
                self._refused(exc)  # owed again at the next connect, never taken as sent
            except (asyncio.CancelledError, aiomqtt.MqttError) as exc:
                if topic not in self._dirty and self._retained.get(topic) == data:
                    self._mark(topic)  # not known to have arrived: still owed
                if isinstance(exc, asyncio.CancelledError):
                    raise
                if not failure.done():
                    timed_out = "timed out" in str(exc)
                    failure.set_exception(
                        BrokerStalled(f"no PUBACK within {self.ack_timeout:.0f} s")
                        if timed_out
                        else exc
                    )
            else:
                delivered[0] += 1
                if data == b"" and self._retained.get(topic) == b"":
                    del self._retained[topic]  # cleared: nothing to republish
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
                topic = next(iter(self._dirty))
                del self._dirty[topic]
                inflight[0] += 1
                task = asyncio.create_task(send(topic, self._retained.get(topic, b"")))
                sends.add(task)
                task.add_done_callback(sends.discard)
        finally:
            for task in list(sends):
                task.cancel()
            if not failure.done():
                failure.cancel()
            else:
                failure.exception()  # retrieved: no "never retrieved" warning

    async def _flush(self, client: aiomqtt.Client) -> None:
        """Send what is still owed (on a clean stop), one by one."""
        while self._dirty:
            topic = next(iter(self._dirty))
            del self._dirty[topic]
            try:
                await client.publish(
                    topic,
                    _unpack(self._retained.get(topic, b"")),
                    qos=1,
                    retain=True,
                    timeout=self.ack_timeout,
                )
            except PublishRefused as exc:
                self._refused(exc)

    # --- connection -----------------------------------------------------------------

    def stop(self, final: Sequence[tuple[str, bytes]] = ()) -> None:
        """Ask run() to publish ``final`` and the bridge's offline, then disconnect."""
        self._final = list(final)
        self._stopping.set()

    async def run(self, on_message: MessageHandler) -> None:
        """Stay connected until stop(); every (re)connect resubscribes and republishes."""
        attempt = 0
        flaps = 0
        options = self._options
        while not self._stopping.is_set():
            client = new_client(options, self._on_new_session)
            received = [0]
            hand_over_before_ack(
                client,
                received,
                on_message,
                (options.availability_topic, self.availability_seen),
            )
            connected_at: float | None = None
            try:
                async with client:
                    attempt = 0
                    connected_at = asyncio.get_running_loop().time()
                    await self._serve(client, received)
                    return
            except SessionTakenOver as exc:
                log.error("mqtt_session_taken_over", error=str(exc))
                raise
            except aiomqtt.MqttError as exc:
                self._set_client(None)
                delay = self._reconnect_delays[min(attempt, len(self._reconnect_delays) - 1)]
                attempt += 1
                error = str(exc)
                lasted = None
                if connected_at is not None:
                    lasted = asyncio.get_running_loop().time() - connected_at
                flaps = flaps + 1 if lasted is not None and lasted < FLAP_SECONDS else 0
                if flaps >= FLAP_COUNT:
                    delay = self._reconnect_delays[-1]  # do not fight for the id
                    log.error(
                        "mqtt_flapping",
                        broker=f"{options.host}:{options.port}",
                        connections_lost=flaps,
                        hint=self._flap_hint(),
                        retry_in=delay,
                    )
                cause = connect_cause(error)
                self.disconnects[cause] += 1
                if cause.startswith("TLS"):
                    # Retrying will not fix a certificate: say what to look at.
                    log.error(
                        "mqtt_tls_failed",
                        broker=f"{options.host}:{options.port}",
                        error=error,
                        hint="check mqtt.tls (ca_file, host name, client certificate)",
                        retry_in=delay,
                    )
                else:
                    log.warning(
                        "mqtt_disconnected" if lasted is not None else "mqtt_connect_failed",
                        broker=f"{options.host}:{options.port}",
                        cause=cause,
                        error=error,
                        retry_in=delay,
                        backlog=self.backlog,
                    )
                await wait_until_set(self._stopping, delay)
            finally:
                self._set_client(None)

    def _flap_hint(self) -> str:
        # Mosquitto ends a taken-over connection and a restarting broker's alike (a
        # reset, "unspecified error"), MQTT 5 or not. What differs: after a restart the
        # broker is gone for a moment, so a connect fails and the count starts again;
        # a takeover lets every reconnect succeed, and takes it away again.
        return (
            f"each connection ended within {FLAP_SECONDS:.0f} s and the next one succeeded"
            f" at once: most likely another client uses client_id"
            f" {self._options.client_id!r} (give every instance its own mqtt.client_id);"
            " else the broker drops us (see its log)"
        )

    async def _serve(self, client: aiomqtt.Client, received: list[int]) -> None:
        v5 = self._options.protocol == "5"
        streams = [sub for sub in self._subscriptions if sub.stream]
        for sub in self._subscriptions:
            if sub.stream:
                continue
            if v5:
                await client.subscribe(
                    sub.topic,
                    options=SubscribeOptions(
                        qos=sub.qos,
                        noLocal=sub.no_local,
                        retainAsPublished=sub.retain_as_published,
                    ),
                )
            else:
                await client.subscribe(sub.topic, qos=sub.qos)
        own = self._options.availability_topic
        if v5:
            await client.subscribe(own, options=SubscribeOptions(qos=1, noLocal=True))
        else:
            await client.subscribe(own, qos=1)
        retained_only = [sub.topic for sub in self._subscriptions if sub.retained_only]
        if retained_only:
            await until_quiet(received)
            for topic in retained_only:
                await client.unsubscribe(topic)
        for sub in streams:
            await client.subscribe(sub.topic, qos=sub.qos)
        await client.publish(self._options.availability_topic, ONLINE, qos=1, retain=True)
        self._lost = asyncio.get_running_loop().create_future()
        self._set_client(client)
        self.connections += 1
        log.info(
            "mqtt_connected",
            broker=f"{self._options.host}:{self._options.port}",
            connection=self.connections,
        )

        async def watch() -> None:
            # Nothing is queued for us (messages are handed over in paho's callback):
            # the stream only tells when the connection ends, and why.
            try:
                async for _ in client.messages:
                    pass
            except aiomqtt.MqttError:
                cause = disconnect_cause(client)
                if cause is not None and is_takeover(cause):
                    raise SessionTakenOver(
                        f"another client connected with client_id {self._options.client_id!r}"
                        " and took over the session: give every instance its own"
                        " mqtt.client_id"
                    ) from None
                if cause is not None:
                    raise cause from None
                raise

        # The broker may have lost anything retained: everything goes out again.
        await self.republish_retained()
        watcher = asyncio.create_task(watch())
        sender = asyncio.create_task(self._send_dirty(client))
        stopper = asyncio.create_task(self._stopping.wait())
        try:
            done, _ = await asyncio.wait(
                {watcher, sender, stopper}, return_when=asyncio.FIRST_COMPLETED
            )
        finally:
            self._lost.set_result(None)
            for task in (watcher, sender, stopper):
                task.cancel()
            await asyncio.gather(watcher, sender, stopper, return_exceptions=True)
        for task in (watcher, sender):
            if task in done:
                task.result()  # raises the MqttError that ended the connection
                raise aiomqtt.MqttError("message stream ended")
        with contextlib.suppress(TimeoutError, aiomqtt.MqttError):
            async with asyncio.timeout(SHUTDOWN_TIMEOUT):
                await self._say_goodbye(client)

    async def _say_goodbye(self, client: aiomqtt.Client) -> None:
        for topic, data in self._final:
            self._store(topic, data)
        await self._flush(client)
        await client.publish(self._options.availability_topic, OFFLINE, qos=1, retain=True)
        log.info("mqtt_disconnecting")
