"""One resilient MQTT session: connect, reconnect, remember what is retained.

Knows MQTT and nothing of go-e. Retained topics are kept in a store (mqtt/retained.py)
that a reconnect republishes. One-off messages (a command's result) go at QoS 2 through
one client object for the whole session, so the broker takes each exactly once, also
when a connection dies in the middle (publish_once, mqtt/one_offs.py). Inbound messages
are handed over before the broker is acknowledged, so what the handler stored survives
any crash. When to reconnect, and what a lost connection is logged as, is mqtt/reconnect.py's. What
others write on our availability and on the topics we watch (``ours``, MQTT 5) is
answered with our value (mqtt/overwrites.py).
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections import Counter
from collections.abc import Callable, Iterable, Sequence
from typing import Any

import aiomqtt
import structlog
from paho.mqtt.subscribeoptions import SubscribeOptions

from goe2mqtt.mqtt.client import (
    InboundMessage,
    MessageHandler,
    MqttOptions,
    PublishRefused,
    SessionTakenOver,
    Subscription,
    hand_over_before_ack,
    subscribe,
    until_ended,
    wire_bytes,
)
from goe2mqtt.mqtt.families import Family, LiveFamily
from goe2mqtt.mqtt.look_back import LookBack
from goe2mqtt.mqtt.one_offs import OneOffs
from goe2mqtt.mqtt.overwrites import Overwrites
from goe2mqtt.mqtt.own_topics import Owner, OwnTopics
from goe2mqtt.mqtt.pace import Pace
from goe2mqtt.mqtt.reconnect import RECONNECT_DELAYS, Reconnects
from goe2mqtt.mqtt.retained import RetainedStore
from goe2mqtt.mqtt.session_client import TOO_LARGE, PacketNote, SessionClient, new_client
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

SHUTDOWN_TIMEOUT = 5.0
FLUSH_WITHIN = 3.0  # of the goodbye's SHUTDOWN_TIMEOUT: the rest is the offline's
MIN_ACK_TIMEOUT = 5.0


class MqttSession:
    def __init__(
        self,
        options: MqttOptions,
        subscriptions: Sequence[Subscription],
        *,
        reconnect_delays: Sequence[float] = RECONNECT_DELAYS,
        on_connection: Callable[[bool], None] | None = None,
        on_new_session: Callable[[], None] = lambda: None,
        owner: Owner | None = None,
    ) -> None:
        """``owner``: for a topic the ``ours`` subscriptions deliver, the key it is kept
        under (the live family it is a member of, or itself); None: not ours."""
        self._options = options
        self._on_connection = on_connection
        self._on_new_session = on_new_session
        self._subscriptions = tuple(subscriptions)
        self._reconnect_delays = tuple(reconnect_delays)
        self._store = RetainedStore(
            self._refused, pace=Pace(options.bulk_rate), ceiling=Pace(options.max_rate)
        )
        # The one client of the session (made when first needed: aiomqtt needs the loop);
        # _client is it while connected.
        self._session_client: SessionClient | None = None
        self._client: aiomqtt.Client | None = None
        self._up = asyncio.Event()  # set while connected
        self._one_offs = OneOffs()  # resumed ones, and the wait for each PUBCOMP
        self._stopping = asyncio.Event()
        self._final: list[tuple[str, bytes]] = []
        self._goodbye_within = SHUTDOWN_TIMEOUT  # set by stop()
        self._online_said = False  # this connection has said (or is saying) online
        # What earlier runs left retained: read once per process (mqtt/look_back.py).
        self._look_back = LookBack(options, self._subscriptions)
        self.connections = 0
        self.disconnects: Counter[str] = Counter()  # cause -> connections lost or failed
        # Publishes the broker refused (MQTT 5 reason code >= 0x80): topic -> reason.
        self.refused: dict[str, str] = {}
        self.refused_count = 0
        self._own = OwnTopics(self._store, options.availability_topic, subscriptions, owner)
        # A publish not acknowledged within this long means the broker is gone or
        # frozen (TCP alone can take minutes to notice a SIGSTOPped broker).
        self.ack_timeout = max(float(options.keepalive), MIN_ACK_TIMEOUT)

    @property
    def connected(self) -> bool:
        return self._client is not None

    @property
    def owes_goodbye(self) -> bool:
        """Whether the connection has said online, connected or still on its way there
        (subscribing, waiting for the online's PUBACK). Cancelled, it would end with a
        DISCONNECT: the broker drops the last will and keeps the online for good."""
        return self._online_said

    @property
    def unanswered(self) -> float:
        """Seconds the broker has left a request of ours unanswered (0: none waits, or
        not connected). Past half the keep-alive the broker is frozen or gone."""
        client = self._session_client
        if client is None or not self.connected:
            return 0.0
        return client.unanswered_for(time.monotonic())

    @property
    def looked_back(self) -> bool:
        """Whether what earlier runs left retained has been read (once per process)."""
        return self._look_back.done

    async def until_looked_back(self) -> None:
        """Until what earlier runs left retained has all been handed over."""
        await self._look_back.read.wait()

    @property
    def options(self) -> MqttOptions:
        return self._options

    def availability_seen(self, payload: bytes) -> None:
        """Someone else wrote our availability: said again while connected."""
        self._own.availability_seen(payload)

    @property
    def overwrites(self) -> Overwrites:
        """What others wrote on the watched topics of ours, and how it was answered."""
        return self._own.retained

    @property
    def answering(self) -> int:
        """Answers to others' writes waiting for their time."""
        return len(self._own.answering)

    @property
    def backlog(self) -> int:
        """Retained topics waiting for the broker (each counts once, however often it changed)."""
        return self._store.backlog

    def _set_client(self, client: aiomqtt.Client | None) -> None:
        was_connected = self.connected
        self._client = client
        self._own.live = client is not None and not self._stopping.is_set()
        if client is None:
            self._up.clear()
        else:
            self._up.set()
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
                hint="raise the broker's max_packet_size above it"
                if exc.reason.startswith(TOO_LARGE)
                else "check the broker's ACL for this client's user",
            )
            if len(self.refused) >= 100:
                self.refused.pop(next(iter(self.refused)))
        self.refused[exc.topic] = exc.reason

    def refused_info(self) -> dict[str, Any]:
        return {"count": self.refused_count, "topics": dict(list(self.refused.items())[-10:])}

    async def publish_retained(
        self, topic: str, payload: str | bytes, *, vouches: Iterable[str] = ()
    ) -> None:
        """Publish if the payload differs from what we last published there; a family
        it ``vouches`` for (keys), still owed, goes before it (mqtt/vouches.py).

        Returns at once: the sender delivers it, newest value first per topic.
        """
        self._store.put(topic, wire_bytes(payload), vouches)

    async def publish_family(self, family: Family) -> None:
        """Publish a family's members whose payload changed (all of it when new); keep
        the family, not their payloads, for what is sent again (mqtt/retained.py)."""
        self._store.put_family(family)

    async def publish_members(self, family: LiveFamily, topics: Iterable[str]) -> None:
        """Publish these members of a live family, built when they are sent (the newest
        then); keep the family, not their payloads (mqtt/retained.py)."""
        for topic in topics:
            self._store.put_member(family, topic)

    async def clear_retained(self, topic: str) -> None:
        """Remove a retained message from the broker and forget it."""
        await self.publish_retained(topic, b"")

    async def republish_retained(self) -> None:
        """Send everything retained again (Home Assistant restarted). Calls coalesce."""
        self._store.owe_everything()

    async def settled(self) -> None:
        """Return once the broker acknowledged every change made so far (or a newer one)."""
        await self._store.settled(self._store.barrier())

    async def resent(self) -> None:
        """Return once the last republish went out (taken for sending)."""
        await self._store.resent.wait()

    async def publish_once(
        self,
        topic: str,
        payload: str | bytes,
        *,
        on_sent: PacketNote | None = None,
        on_taken: PacketNote | None = None,
        packet_id: int | None = None,
    ) -> None:
        """A one-off, non-retained message the broker takes exactly once; returns when it
        has it (PUBCOMP), however many connections that takes.

        It goes out after every retained change made before the call (a result after the
        states it reports), at QoS 2 through the session's one client: a connection that
        dies mid-way is followed by the same packet again (DUP, or PUBREL), never by a
        second message. ``on_sent(packet_id)`` is told before it leaves, ``on_taken``
        when the broker took it (PUBREC), before our PUBREL; ``packet_id``: the one an
        earlier process was told, for a message given to resume_once. Raises
        PublishRefused when the broker answered that it will not take it. Cancelled, it
        may still reach the broker once."""
        data = wire_bytes(payload)
        done = self._one_offs.resumed(packet_id)
        if done is None:
            await self._store.settled(self._store.barrier())
            await self._up.wait()
            done = self._client_of_session().publish_once(topic, data, on_sent, on_taken)
        try:
            await self._one_offs.taken(done, self)
        except PublishRefused as exc:
            self._refused(exc)
            raise

    def resume_once(self, topic: str, payload: str | bytes, packet_id: int, *, taken: bool) -> None:
        """A message an earlier process gave publish_once, under ``packet_id`` (on_sent),
        which the broker took if ``taken`` (on_taken): the same PUBLISH again, or only our
        PUBREL, first thing on the first connect; publish_once(..., packet_id=) waits for
        it. Call before run()."""
        assert not self.connections, "resumed messages go out on the first connect"
        data = wire_bytes(payload)
        self._one_offs.resume(self._client_of_session(), topic, data, packet_id, taken=taken)

    def _client_of_session(self) -> SessionClient:
        if self._session_client is None:
            self._session_client = new_client(self._options, self._on_new_session)
        return self._session_client

    # --- connection -----------------------------------------------------------------

    def stop(
        self, final: Sequence[tuple[str, bytes]] = (), within: float = SHUTDOWN_TIMEOUT
    ) -> None:
        """Ask run() to publish ``final`` and the bridge's offline, then disconnect; the
        goodbye has ``within`` s (past them the broker's last will says offline)."""
        self._final = list(final)
        self._goodbye_within = max(0.0, within)
        self._stopping.set()
        self._own.live = False

    async def run(self, on_message: MessageHandler) -> None:
        """Stay connected until stop(); every (re)connect resubscribes and republishes."""
        client = self._client_of_session()
        hand_over_before_ack(client, [0], on_message, self._own.message)
        try:
            await self._stay_connected(client, on_message)
        finally:
            await self._look_back.stop()

    async def _stay_connected(self, client: SessionClient, on_message: MessageHandler) -> None:
        reconnects = Reconnects(self._options, self._reconnect_delays)
        while not self._stopping.is_set():
            connected_at: float | None = None
            try:
                async with client:
                    reconnects.connected()
                    connected_at = asyncio.get_running_loop().time()
                    await self._serve(client, on_message)
                    return
            except SessionTakenOver as exc:
                log.error("mqtt_session_taken_over", error=str(exc))
                raise
            except aiomqtt.MqttError as exc:
                self._set_client(None)
                lasted = None
                if connected_at is not None:
                    lasted = asyncio.get_running_loop().time() - connected_at
                cause, delay = reconnects.lost(exc, lasted, self.backlog)
                self.disconnects[cause] += 1
                await wait_until_set(self._stopping, delay)
            finally:
                self._online_said = False  # said offline, or the last will will
                self._set_client(None)

    async def _serve(self, client: aiomqtt.Client, on_message: MessageHandler) -> None:
        v5 = self._options.protocol == "5"
        await subscribe(client, self._subscriptions, v5)
        own = self._options.availability_topic
        if v5:
            await client.subscribe(own, options=SubscribeOptions(qos=1, noLocal=True))
            await self._own.watch(client)
        else:
            await client.subscribe(own, qos=1)
        self._online_said = True
        await client.publish(self._options.availability_topic, ONLINE, qos=1, retain=True)
        self._one_offs.stalled = stalled = asyncio.get_running_loop().create_future()
        self._set_client(client)
        self.connections += 1
        log.info(
            "mqtt_connected",
            broker=f"{self._options.host}:{self._options.port}",
            connection=self.connections,
        )
        self._look_back.start(on_message)
        # The broker may have lost anything retained: everything goes out again.
        await self.republish_retained()
        watcher = asyncio.create_task(until_ended(client, self._options.client_id))
        # MQTT 5: the window shrinks to what the broker lets await an answer.
        window = self._client_of_session().in_flight_cap
        sender = asyncio.create_task(self._store.send(client, self.ack_timeout, window))
        stopper = asyncio.create_task(self._stopping.wait())
        clean_stop = False
        try:
            done, _ = await asyncio.wait(
                {watcher, sender, stopper, stalled}, return_when=asyncio.FIRST_COMPLETED
            )
            # A clean stop: the sender goes on into the goodbye's flush. Cancelled, the
            # publishes awaiting their PUBACK would be owed again and sent a second time
            # (a new packet each: every subscriber got them twice).
            clean_stop = done == {stopper}
        finally:
            self._one_offs.stalled = None
            self._set_client(None)
            ending = (watcher, stopper) if clean_stop else (watcher, sender, stopper)
            for task in ending:
                task.cancel()
            await asyncio.gather(*ending, return_exceptions=True)
        try:
            ended: tuple[asyncio.Future[Any], ...] = (watcher, sender, stalled)
            for future in ended:
                if future in done:
                    future.result()  # raises the MqttError that ended the connection
                    raise aiomqtt.MqttError("message stream ended")
            if not stalled.done():
                stalled.cancel()
            with contextlib.suppress(TimeoutError, aiomqtt.MqttError):
                async with asyncio.timeout(self._goodbye_within):
                    await self._say_goodbye(client, sender)
        finally:
            sender.cancel()
            await asyncio.gather(sender, return_exceptions=True)

    async def _say_goodbye(self, client: aiomqtt.Client, sending: asyncio.Task[None]) -> None:
        for topic, data in self._final:
            self._store.store(topic, data)
        # The offline's share of the goodbye as of SHUTDOWN_TIMEOUT's, kept when it is less.
        within = self._goodbye_within * FLUSH_WITHIN / SHUTDOWN_TIMEOUT
        await self._store.flush(sending, within=min(FLUSH_WITHIN, within))
        await client.publish(self._options.availability_topic, OFFLINE, qos=1, retain=True)
        log.info("mqtt_disconnecting")
