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
import ssl
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

import aiomqtt
import structlog
from paho.mqtt.client import MQTT_CLEAN_START_FIRST_ONLY
from paho.mqtt.packettypes import PacketTypes
from paho.mqtt.properties import Properties
from paho.mqtt.subscribeoptions import SubscribeOptions

from goe2mqtt.aio import wait_until_set

log = structlog.get_logger()

ONLINE = b"online"
OFFLINE = b"offline"
RECONNECT_DELAYS = (1.0, 2.0, 5.0, 10.0, 30.0)
SHUTDOWN_TIMEOUT = 5.0
RETAINED_QUIET = 0.3  # no new message for this long: the retained ones are all here
RETAINED_LIMIT = 10.0
SEND_WINDOW = 16  # retained publishes awaiting their PUBACK at once
# Connections lost this soon after they were made, this many times in a row: someone
# else keeps taking them (the same client_id elsewhere) or the broker refuses us.
FLAP_SECONDS = 10.0
FLAP_COUNT = 3
MIN_ACK_TIMEOUT = 5.0


@dataclass(frozen=True)
class InboundMessage:
    topic: str
    payload: bytes
    retain: bool
    mid: int | None = None  # QoS 1 packet id: a redelivery (dup) carries the same one
    dup: bool = False


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


@dataclass(frozen=True)
class MqttOptions:
    host: str
    port: int = 1883
    username: str | None = None
    password: str | None = None
    client_id: str = "goe2mqtt"
    keepalive: int = 60
    availability_topic: str = "goe2mqtt/bridge/availability"
    protocol: str = "5"  # "5" or "3.1.1"
    # The broker keeps our subscriptions and queues QoS 1 messages for us this long
    # while we are away (MQTT 5; with 3.1.1 the broker's own policy applies). 0: no session.
    session_expiry: int = 0
    tls: ssl.SSLContext | None = None

    def __repr__(self) -> str:  # the password stays out of tracebacks
        return f"MqttOptions(host={self.host!r}, port={self.port}, client_id={self.client_id!r})"


# Called for every inbound message before the broker gets its PUBACK: what it stores
# is safe. If it raises, no PUBACK goes out, the connection drops and the broker
# delivers the message again after the reconnect.
MessageHandler = Callable[[InboundMessage], None]


def _hand_over_before_ack(
    client: aiomqtt.Client,
    counter: list[int],
    handler: MessageHandler,
    session: MqttSession | None = None,
) -> None:
    """Route inbound messages to ``handler`` inside paho's callback.

    paho sends the PUBACK of a QoS 1 message right after its on_message callback
    returns; aiomqtt's own callback only queues the message, so an acknowledged
    command would still be in memory only. aiomqtt 2.x has no public hook for this.
    """

    def on_message(_client: Any, _userdata: Any, message: Any) -> None:
        counter[0] += 1
        try:
            topic = message.topic
        except UnicodeDecodeError:
            return  # not a topic of ours
        if session is not None and topic == session.availability_topic:
            session.availability_seen(bytes(message.payload))
            return
        handler(
            InboundMessage(
                topic=topic,
                payload=bytes(message.payload),
                retain=bool(message.retain),
                mid=message.mid if message.qos > 0 else None,
                dup=bool(message.dup),
            )
        )

    client._client.on_message = on_message


async def _until_quiet(counter: list[int]) -> None:
    """Wait until no more messages arrive for a moment (the retained ones are in)."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + RETAINED_LIMIT
    seen = -1
    while loop.time() < deadline and counter[0] != seen:
        seen = counter[0]
        await asyncio.sleep(RETAINED_QUIET)


def _new_client(options: MqttOptions) -> aiomqtt.Client:
    persistent = options.session_expiry > 0
    v5 = options.protocol == "5"
    properties = None
    if v5:
        properties = Properties(PacketTypes.CONNECT)  # type: ignore[no-untyped-call]
        properties.SessionExpiryInterval = options.session_expiry
    client = aiomqtt.Client(
        hostname=options.host,
        port=options.port,
        username=options.username,
        password=options.password,
        identifier=options.client_id,
        keepalive=options.keepalive,
        will=aiomqtt.Will(options.availability_topic, OFFLINE, qos=1, retain=True),
        timeout=10,
        protocol=aiomqtt.ProtocolVersion.V5 if v5 else aiomqtt.ProtocolVersion.V311,
        clean_session=None if v5 else not persistent,
        # Every connection is a new aiomqtt client, so the default "clean on the first
        # connect only" would mean always: ask for the existing session explicitly.
        # (paho refuses any other value than the default for MQTT 3.1.1.)
        clean_start=(not persistent) if v5 else MQTT_CLEAN_START_FIRST_ONLY,
        properties=properties,
        tls_context=options.tls,
        tls_insecure=None if options.tls is None else not options.tls.check_hostname,
        # The sender's window, the results and the goodbye fit without paho queueing.
        max_inflight_messages=2 * SEND_WINDOW,
    )
    # Our own window bounds what is pending; aiomqtt's warning per publish above 10
    # pending would be one log line per message while a broker is slow.
    client.pending_calls_threshold = 4 * SEND_WINDOW
    return client


# (what an error's text contains, what it means): aiomqtt turns the OSError of a
# failed connect into a plain MqttError, so its text is what is left to go by.
_CONNECT_CAUSES = (
    (("Errno -2", "Errno -3", "Errno -5", "Name or service not known"),
     "DNS: the host name does not resolve"),
    (("Connection refused", "Errno 111"), "refused: nothing listens on that host and port"),
    (("CERTIFICATE_VERIFY_FAILED", "SSL", "certificate"),
     "TLS: the handshake or the certificate failed"),
    (("code:134", "code:135", "code:4]", "code:5]", "Not authori", "Bad user name"),
     "auth: the broker refused the user name or password"),
    (("No route to host", "unreachable"), "network: no route to the host"),
    (("timed out",), "timeout: no answer in time"),
)  # fmt: skip


def connect_cause(error: BaseException | str) -> str:
    """What kind of failure a connect error is: DNS, refused, TLS, auth, network, timeout."""
    text = str(error)
    for needles, cause in _CONNECT_CAUSES:
        if any(needle in text for needle in needles):
            return cause
    return "other"


class BrokerStalled(aiomqtt.MqttError):
    """The broker stopped acknowledging: the connection is dead even if TCP is not."""


class SessionTakenOver(Exception):
    """Another client connected with our client id. Reconnecting would knock it off in
    turn, every second, for ever: the session ends instead."""


SESSION_TAKEN_OVER = 142  # MQTT 5 DISCONNECT reason code


def _disconnect_cause(client: aiomqtt.Client) -> BaseException | None:
    """What aiomqtt knows about why the connection ended ("[code:142] Session taken
    over") but its message iterator reports as "Disconnected during message iteration"."""
    ended = client._disconnected
    if ended.done() and not ended.cancelled():
        return ended.exception()
    return None


def _is_takeover(error: BaseException) -> bool:
    code = getattr(error, "rc", None)
    return getattr(code, "value", code) == SESSION_TAKEN_OVER


async def another_live_instance(
    options: MqttOptions, heartbeat_topic: str, wait: float
) -> bool:
    """Whether a live bridge already serves our topics.

    Its availability says online (retained) and its heartbeat (bridge info, refreshed
    every keepalive/2) still comes. A bridge that died without its will reaching the
    broker (killed while the broker was down) leaves "online" but no heartbeat.
    Unreachable broker: False, and the session's own retries will say why.
    """
    client = aiomqtt.Client(
        hostname=options.host,
        port=options.port,
        username=options.username,
        password=options.password,
        identifier=f"{options.client_id}-preflight",
        protocol=aiomqtt.ProtocolVersion.V5
        if options.protocol == "5"
        else aiomqtt.ProtocolVersion.V311,
        tls_context=options.tls,
        tls_insecure=None if options.tls is None else not options.tls.check_hostname,
        timeout=5,
    )
    try:
        async with client:
            await client.subscribe(options.availability_topic, qos=1)
            async with asyncio.timeout(RETAINED_QUIET * 2):
                async for message in client.messages:
                    if message.payload != ONLINE:
                        return False
                    break
            log.info("checking_for_another_instance", topic=heartbeat_topic, wait=wait)
            await client.subscribe(heartbeat_topic, qos=0)
            async with asyncio.timeout(wait):
                async for message in client.messages:
                    if message.topic.matches(heartbeat_topic) and not message.retain:
                        return True
    except (TimeoutError, aiomqtt.MqttError):
        return False
    return False


class MqttSession:
    def __init__(
        self,
        options: MqttOptions,
        subscriptions: Sequence[Subscription],
        *,
        reconnect_delays: Sequence[float] = RECONNECT_DELAYS,
        on_connection: Callable[[bool], None] | None = None,
    ) -> None:
        self._options = options
        self._on_connection = on_connection
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
        # A publish not acknowledged within this long means the broker is gone or
        # frozen (TCP alone can take minutes to notice a SIGSTOPped broker).
        self.ack_timeout = max(float(options.keepalive), MIN_ACK_TIMEOUT)

    @property
    def connected(self) -> bool:
        return self._client is not None

    @property
    def options(self) -> MqttOptions:
        return self._options

    @property
    def availability_topic(self) -> str:
        return self._options.availability_topic

    def availability_seen(self, payload: bytes) -> None:
        """Someone else wrote our availability (a demo, a stray test, a copied config):
        while we are connected we are online, so say it again."""
        if payload == ONLINE or self._client is None or self._stopping.is_set():
            return
        log.warning(
            "availability_overwritten",
            topic=self._options.availability_topic,
            payload=payload[:40].decode("utf-8", "replace"),
            action="published online again",
        )
        self._retained.pop(self._options.availability_topic, None)
        self._retained[self._options.availability_topic] = ONLINE
        self._mark(self._options.availability_topic)

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

    async def publish_retained(self, topic: str, payload: str | bytes) -> None:
        """Publish if the payload differs from what we last published there.

        Returns at once: the sender delivers it, newest value first per topic.
        """
        data = payload.encode() if isinstance(payload, str) else payload
        if self._retained.get(topic) == data:
            return
        # Re-inserted at the end: a republish goes out in the order things last changed,
        # so "online" comes after the states and configs it vouches for.
        self._retained.pop(topic, None)
        self._retained[topic] = data
        self._mark(topic)

    async def clear_retained(self, topic: str) -> None:
        """Remove a retained message from the broker and forget it."""
        await self.publish_retained(topic, b"")

    async def publish(self, topic: str, payload: str | bytes, *, qos: int = 1) -> bool:
        """A one-off, non-retained message; True once the broker acknowledged it."""
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
                await client.publish(topic, data, qos=1, retain=True, timeout=self.ack_timeout)
            except asyncio.CancelledError:
                if topic not in self._dirty and self._retained.get(topic) == data:
                    self._mark(topic)  # not known to have arrived: still owed
                raise
            except aiomqtt.MqttError as exc:
                if topic not in self._dirty and self._retained.get(topic) == data:
                    self._mark(topic)  # still owed; goes out after the reconnect
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
            await client.publish(
                topic, self._retained.get(topic, b""), qos=1, retain=True, timeout=self.ack_timeout
            )

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
            client = _new_client(options)
            received = [0]
            _hand_over_before_ack(client, received, on_message, self)
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
                    delay = self._reconnect_delays[-1]
                    log.error(
                        "mqtt_flapping",
                        broker=f"{options.host}:{options.port}",
                        connections_lost=flaps,
                        hint=f"each connection was taken away within {FLAP_SECONDS:.0f} s: is"
                        f" another client using client_id {options.client_id!r}? Give every"
                        " instance its own mqtt.client_id",
                        retry_in=delay,
                    )
                cause = connect_cause(error)
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

    async def _serve(self, client: aiomqtt.Client, received: list[int]) -> None:
        v5 = self._options.protocol == "5"
        for sub in self._subscriptions:
            if v5:
                await client.subscribe(
                    sub.topic, options=SubscribeOptions(qos=sub.qos, noLocal=sub.no_local)
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
            await _until_quiet(received)
            for topic in retained_only:
                await client.unsubscribe(topic)
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
                cause = _disconnect_cause(client)
                if cause is not None and _is_takeover(cause):
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
            self._retained.pop(topic, None)
            self._retained[topic] = data
            self._mark(topic)
        await self._flush(client)
        await client.publish(self._options.availability_topic, OFFLINE, qos=1, retain=True)
        log.info("mqtt_disconnecting")
