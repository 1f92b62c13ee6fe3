"""A second MQTT connection for streams the bridge does not own (chargers' own topics).

What a charger (or anyone posing as one) publishes must never delay or crowd out a
command: so its topics are not on the session. This connection has its own client id
({client_id}-chargers), a clean session, QoS 0 subscriptions (the broker queues
nothing for us; what we cannot read fast enough it drops for this connection alone)
and its own reconnect loop. Inbound messages are handed over in paho's callback, so
aiomqtt's queue never holds them: a flood costs what the handler does with each one,
not memory. Knows MQTT and nothing of go-e.
"""

from __future__ import annotations

import asyncio
from collections.abc import Sequence

import aiomqtt
import structlog
from paho.mqtt.packettypes import PacketTypes
from paho.mqtt.properties import Properties

from goe2mqtt.mqtt.client import (
    MessageHandler,
    MqttOptions,
    PublishRefused,
    _connection,
    connect_cause,
    hand_over_before_ack,
    until_disconnected,
)
from goe2mqtt.mqtt.reconnect import RECONNECT_DELAYS, reconnect_delay
from goe2mqtt.mqtt.session_client import SessionClient
from goe2mqtt.util.aio import wait_until_set

log = structlog.get_logger()

ACK_TIMEOUT = 10.0  # a write's PUBACK
ROLE = "chargers"
# The largest packet we take (MQTT 5): a charger's value is a few KiB; the broker drops
# anything larger for us instead of making us read it.
MAX_INBOUND_PACKET = 80 * 1024


class NotConnected(aiomqtt.MqttError):
    """Not sent: the connection is down (or ended before the broker answered)."""


class NotAcknowledged(aiomqtt.MqttError):
    """Sent on a live connection, but the broker did not acknowledge it in time."""


class StreamConnection:
    def __init__(
        self,
        options: MqttOptions,
        filters: Sequence[str],
        on_message: MessageHandler,
        *,
        reconnect_delays: Sequence[float] = RECONNECT_DELAYS,
        ack_timeout: float = ACK_TIMEOUT,
    ) -> None:
        self._options = options
        self._filters = tuple(filters)
        self._on_message = on_message
        self._reconnect_delays = tuple(reconnect_delays)
        self.ack_timeout = ack_timeout
        self.client_id = f"{options.client_id}-{ROLE}"
        self._client: aiomqtt.Client | None = None
        self._lost: asyncio.Future[None] | None = None
        self._stopping = asyncio.Event()
        self.received = [0]  # messages handed over (paho's callback counts them)
        self.connections = 0

    @property
    def connected(self) -> bool:
        return self._client is not None

    def _new_client(self) -> SessionClient:
        properties = None
        if self._options.protocol == "5":
            properties = Properties(PacketTypes.CONNECT)  # type: ignore[no-untyped-call]
            properties.MaximumPacketSize = MAX_INBOUND_PACKET
        return SessionClient(
            **_connection(self._options),
            identifier=self.client_id,
            keepalive=self._options.keepalive,
            timeout=10,
            properties=properties,  # a clean session: aiomqtt's default on a new client
            on_new_session=lambda: None,
        )

    def stop(self) -> None:
        self._stopping.set()

    async def run(self) -> None:
        """Stay connected (subscribed to the filters) until stop()."""
        attempt = 0
        broker = f"{self._options.host}:{self._options.port}"
        while not self._stopping.is_set():
            client = self._new_client()
            hand_over_before_ack(client, self.received, self._on_message)
            connected = False
            try:
                async with client:
                    for topic in self._filters:
                        await client.subscribe(topic, qos=0)
                    attempt, connected = 0, True
                    self.connections += 1
                    log.info("mqtt_stream_connected", broker=broker, client_id=self.client_id)
                    await self._serve(client)
                    return
            except aiomqtt.MqttError as exc:
                delay = reconnect_delay(self._reconnect_delays, attempt)
                attempt += 1
                log.warning(
                    "mqtt_stream_disconnected" if connected else "mqtt_stream_connect_failed",
                    broker=broker,
                    client_id=self.client_id,
                    cause=connect_cause(exc),
                    error=str(exc),
                    retry_in=delay,
                )
                await wait_until_set(self._stopping, delay)

    async def _serve(self, client: aiomqtt.Client) -> None:
        self._lost = asyncio.get_running_loop().create_future()
        self._client = client

        watcher = asyncio.create_task(until_disconnected(client))
        stopper = asyncio.create_task(self._stopping.wait())
        try:
            await asyncio.wait({watcher, stopper}, return_when=asyncio.FIRST_COMPLETED)
        finally:
            self._client = None
            self._lost.set_result(None)
            for task in (watcher, stopper):
                task.cancel()
            await asyncio.gather(watcher, stopper, return_exceptions=True)
        if watcher.done() and not watcher.cancelled():
            watcher.result()  # raises what ended the connection

    async def publish(self, topic: str, payload: bytes) -> None:
        """QoS 1, not retained; returns once the broker acknowledged it.

        Raises NotConnected, NotAcknowledged (the connection was up) or PublishRefused."""
        client, lost = self._client, self._lost
        if client is None or lost is None:
            raise NotConnected("not sent: the broker is not connected")
        sending = asyncio.ensure_future(
            client.publish(topic, payload, qos=1, retain=False, timeout=self.ack_timeout)
        )
        await asyncio.wait({sending, lost}, return_when=asyncio.FIRST_COMPLETED)
        if not sending.done():
            sending.cancel()
            await asyncio.gather(sending, return_exceptions=True)
            raise NotConnected("the connection to the broker ended before it acknowledged")
        try:
            sending.result()
        except PublishRefused:
            raise
        except aiomqtt.MqttError as exc:
            if "timed out" in str(exc):
                raise NotAcknowledged(
                    f"the broker did not acknowledge the write within {self.ack_timeout:.0f} s"
                    " (the connection was up)"
                ) from None
            raise NotConnected(f"not sent: {exc}") from None
