"""One resilient MQTT session: connect, reconnect, remember what is retained.

Knows MQTT and nothing of go-e. Retained topics are kept in a store so that
publishing is change-only and a reconnect republishes everything the broker may
have lost.
"""

from __future__ import annotations

import asyncio
import contextlib
import ssl
from collections.abc import Callable, Sequence
from dataclasses import dataclass

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


@dataclass(frozen=True)
class InboundMessage:
    topic: str
    payload: bytes
    retain: bool


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


MessageHandler = Callable[[InboundMessage], None]


async def _until_quiet(client: aiomqtt.Client) -> None:
    """Wait until no more messages arrive (they stay queued for the consumer).

    Watching the queue, not reading it: a read cut short by a timeout can lose the
    message aiomqtt was fetching, and that might be a command.
    """
    loop = asyncio.get_running_loop()
    deadline = loop.time() + RETAINED_LIMIT
    seen = -1
    while loop.time() < deadline and len(client.messages) != seen:
        seen = len(client.messages)
        await asyncio.sleep(RETAINED_QUIET)


def _new_client(options: MqttOptions) -> aiomqtt.Client:
    persistent = options.session_expiry > 0
    v5 = options.protocol == "5"
    properties = None
    if v5:
        properties = Properties(PacketTypes.CONNECT)  # type: ignore[no-untyped-call]
        properties.SessionExpiryInterval = options.session_expiry
    return aiomqtt.Client(
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
    )


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
        self._retained: dict[str, bytes] = {}
        self._client: aiomqtt.Client | None = None
        self._stopping = asyncio.Event()
        self._final: list[tuple[str, bytes]] = []
        self.connections = 0

    @property
    def connected(self) -> bool:
        return self._client is not None

    def _set_client(self, client: aiomqtt.Client | None) -> None:
        was_connected = self.connected
        self._client = client
        if self._on_connection is not None and self.connected != was_connected:
            self._on_connection(self.connected)

    # --- publishing -----------------------------------------------------------------

    async def publish_retained(self, topic: str, payload: str | bytes) -> None:
        """Publish if the payload differs from what we last published there."""
        data = payload.encode() if isinstance(payload, str) else payload
        if self._retained.get(topic) == data:
            return
        # Re-inserted at the end: a republish goes out in the order things last changed,
        # so "online" comes after the states and configs it vouches for.
        self._retained.pop(topic, None)
        self._retained[topic] = data
        await self._send(topic, data, qos=1, retain=True)

    async def clear_retained(self, topic: str) -> None:
        """Remove a retained message from the broker and forget it."""
        self._retained.pop(topic, None)
        await self._send(topic, b"", qos=1, retain=True)

    async def publish(self, topic: str, payload: str | bytes, *, qos: int = 1) -> bool:
        """A one-off, non-retained message; False if it could not be sent now."""
        data = payload.encode() if isinstance(payload, str) else payload
        return await self._send(topic, data, qos=qos, retain=False)

    async def republish_retained(self) -> None:
        for topic, data in list(self._retained.items()):
            await self._send(topic, data, qos=1, retain=True)

    async def _send(self, topic: str, data: bytes, *, qos: int, retain: bool) -> bool:
        client = self._client
        if client is None:
            return False  # retained data goes out again on reconnect
        try:
            await client.publish(topic, data, qos=qos, retain=retain)
        except aiomqtt.MqttError as exc:
            log.debug("mqtt_publish_failed", topic=topic, error=str(exc))
            return False
        return True

    # --- connection -----------------------------------------------------------------

    def stop(self, final: Sequence[tuple[str, bytes]] = ()) -> None:
        """Ask run() to publish ``final`` and the bridge's offline, then disconnect."""
        self._final = list(final)
        self._stopping.set()

    async def run(self, on_message: MessageHandler) -> None:
        """Stay connected until stop(); every (re)connect resubscribes and republishes."""
        attempt = 0
        options = self._options
        while not self._stopping.is_set():
            client = _new_client(options)
            try:
                async with client:
                    attempt = 0
                    await self._serve(client, on_message)
                    return
            except aiomqtt.MqttError as exc:
                self._set_client(None)
                delay = self._reconnect_delays[min(attempt, len(self._reconnect_delays) - 1)]
                attempt += 1
                error = str(exc)
                if "CERTIFICATE_VERIFY_FAILED" in error or "SSL" in error:
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
                        "mqtt_disconnected",
                        broker=f"{options.host}:{options.port}",
                        error=error,
                        retry_in=delay,
                    )
                await wait_until_set(self._stopping, delay)
            finally:
                self._set_client(None)

    async def _serve(self, client: aiomqtt.Client, on_message: MessageHandler) -> None:
        v5 = self._options.protocol == "5"
        for sub in self._subscriptions:
            if v5:
                await client.subscribe(
                    sub.topic, options=SubscribeOptions(qos=sub.qos, noLocal=sub.no_local)
                )
            else:
                await client.subscribe(sub.topic, qos=sub.qos)
        retained_only = [sub.topic for sub in self._subscriptions if sub.retained_only]
        if retained_only:
            await _until_quiet(client)
            for topic in retained_only:
                await client.unsubscribe(topic)
        await client.publish(self._options.availability_topic, ONLINE, qos=1, retain=True)
        self._set_client(client)
        self.connections += 1
        log.info(
            "mqtt_connected",
            broker=f"{self._options.host}:{self._options.port}",
            connection=self.connections,
        )

        async def consume() -> None:
            async for message in client.messages:
                payload = message.payload
                on_message(
                    InboundMessage(
                        topic=message.topic.value,
                        payload=payload if isinstance(payload, bytes) else str(payload).encode(),
                        retain=bool(message.retain),
                    )
                )

        # The message stream is what notices a dead connection at once (a QoS 1 publish
        # only times out), so it runs from the start and the republish beside it.
        consumer = asyncio.create_task(consume())
        republisher = asyncio.create_task(self.republish_retained())
        stopper = asyncio.create_task(self._stopping.wait())
        try:
            done, _ = await asyncio.wait({consumer, stopper}, return_when=asyncio.FIRST_COMPLETED)
        finally:
            for task in (consumer, republisher, stopper):
                task.cancel()
            await asyncio.gather(republisher, return_exceptions=True)
        if consumer in done:
            consumer.result()  # raises the MqttError that ended the connection
            raise aiomqtt.MqttError("message stream ended")
        with contextlib.suppress(TimeoutError, aiomqtt.MqttError):
            async with asyncio.timeout(SHUTDOWN_TIMEOUT):
                await self._say_goodbye(client)

    async def _say_goodbye(self, client: aiomqtt.Client) -> None:
        for topic, data in self._final:
            self._retained[topic] = data
            await client.publish(topic, data, qos=1, retain=True)
        await client.publish(self._options.availability_topic, OFFLINE, qos=1, retain=True)
        log.info("mqtt_disconnecting")
