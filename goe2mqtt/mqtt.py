"""One resilient MQTT session: connect, reconnect, remember what is retained.

Knows MQTT and nothing of go-e. Retained topics are kept in a store so that
publishing is change-only and a reconnect republishes everything the broker may
have lost.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Callable, Sequence
from dataclasses import dataclass

import aiomqtt
import structlog

from goe2mqtt.aio import wait_until_set

log = structlog.get_logger()

ONLINE = b"online"
OFFLINE = b"offline"
RECONNECT_DELAYS = (1.0, 2.0, 5.0, 10.0, 30.0)
SHUTDOWN_TIMEOUT = 5.0


@dataclass(frozen=True)
class InboundMessage:
    topic: str
    payload: bytes
    retain: bool


@dataclass(frozen=True)
class MqttOptions:
    host: str
    port: int = 1883
    username: str | None = None
    password: str | None = None
    client_id: str = "goe2mqtt"
    keepalive: int = 60
    availability_topic: str = "goe2mqtt/bridge/availability"


MessageHandler = Callable[[InboundMessage], None]


class MqttSession:
    def __init__(
        self,
        options: MqttOptions,
        subscriptions: Sequence[tuple[str, int]],
        *,
        reconnect_delays: Sequence[float] = RECONNECT_DELAYS,
    ) -> None:
        self._options = options
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

    # --- publishing -----------------------------------------------------------------

    async def publish_retained(self, topic: str, payload: str | bytes) -> None:
        """Publish if the payload differs from what we last published there."""
        data = payload.encode() if isinstance(payload, str) else payload
        if self._retained.get(topic) == data:
            return
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
            client = aiomqtt.Client(
                hostname=options.host,
                port=options.port,
                username=options.username,
                password=options.password,
                identifier=options.client_id,
                keepalive=options.keepalive,
                will=aiomqtt.Will(options.availability_topic, OFFLINE, qos=1, retain=True),
                timeout=10,
            )
            try:
                async with client:
                    attempt = 0
                    await self._serve(client, on_message)
                    return
            except aiomqtt.MqttError as exc:
                self._client = None
                delay = self._reconnect_delays[min(attempt, len(self._reconnect_delays) - 1)]
                attempt += 1
                log.warning(
                    "mqtt_disconnected",
                    broker=f"{options.host}:{options.port}",
                    error=str(exc),
                    retry_in=delay,
                )
                await wait_until_set(self._stopping, delay)
            finally:
                self._client = None

    async def _serve(self, client: aiomqtt.Client, on_message: MessageHandler) -> None:
        for topic, qos in self._subscriptions:
            await client.subscribe(topic, qos=qos)
        await client.publish(self._options.availability_topic, ONLINE, qos=1, retain=True)
        self._client = client
        self.connections += 1
        log.info(
            "mqtt_connected",
            broker=f"{self._options.host}:{self._options.port}",
            connection=self.connections,
        )
        await self.republish_retained()

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

        consumer = asyncio.create_task(consume())
        stopper = asyncio.create_task(self._stopping.wait())
        try:
            done, _ = await asyncio.wait({consumer, stopper}, return_when=asyncio.FIRST_COMPLETED)
        finally:
            for task in (consumer, stopper):
                task.cancel()
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
