"""What earlier runs left retained, read once per process on a connection of its own.

Mosquitto drops every packet it has for a client once ``max_queued_messages`` (1000 by
default) wait to be written to it: not only messages, but SUBACKs, PUBACKs and PUBRECs
too (eclipse/mosquitto#3542, open). Thousands of retained discovery configs read on
the session's own connection made such a queue whenever the bridge read them slower
than the broker sent them: the session then waited for a SUBACK that never came,
reconnected, read them all again, and never came up (the 30-minute chaos soak, 50
chargers). On a side connection a flood can only cost some of its own reads.

Knows MQTT and nothing of go-e.
"""

from __future__ import annotations

import asyncio
from collections.abc import Sequence

import aiomqtt
import structlog

from goe2mqtt.mqtt.client import (
    MessageHandler,
    MqttOptions,
    Subscription,
    disconnect_cause,
    hand_over_before_ack,
    side_client,
    until_quiet,
)
from goe2mqtt.util.aio import cancel_until_ended

log = structlog.get_logger()

# The side connection's own answers (CONNACK, SUBACK) come before any retained flood.
ANSWER_TIMEOUT = 10.0
# A stopped read ends within this (its side connection's DISCONNECT included), else it is
# left cancelled to the event loop's end: the session's stop has a deadline to keep.
LOOK_BACK_ENDS_WITHIN = 2.0


async def read_retained(
    options: MqttOptions, filters: Sequence[Subscription], handler: MessageHandler
) -> int:
    """Hand every retained message under ``filters`` to ``handler`` (inside paho's
    callback, as the session does); one filter at a time, so that the broker's queue
    for us holds one filter's messages at most. Returns how many came. Raises
    aiomqtt.MqttError when the broker cannot be reached or does not answer."""
    client = side_client(options, "look-back", timeout=ANSWER_TIMEOUT)
    received = [0]
    hand_over_before_ack(client, received, handler)
    try:
        async with client:
            for wanted in filters:
                await client.subscribe(wanted.topic, qos=wanted.qos)
                await until_quiet(received)
    finally:
        disconnect_cause(client)  # a cut connection's error told: never "never retrieved"
    return received[0]


async def read_retained_together(
    options: MqttOptions, filters: Sequence[str], handler: MessageHandler, *, role: str
) -> int:
    """Hand every retained message under ``filters`` to ``handler``, all subscribed in
    one SUBSCRIBE on a connection of its own (``role`` names it): for many filters that
    each match a few topics. Returns how many came; raises as read_retained does."""
    client = side_client(options, role, timeout=ANSWER_TIMEOUT)
    received = [0]
    hand_over_before_ack(client, received, handler)
    try:
        async with client:
            await client.subscribe([(topic, 0) for topic in filters])
            await until_quiet(received)
    finally:
        disconnect_cause(client)
    return received[0]


class LookBack:
    """Reads once per process what the retained_only subscriptions hold; started on
    each connection of the session until one read succeeds."""

    def __init__(self, options: MqttOptions, subscriptions: Sequence[Subscription]) -> None:
        self._options = options
        self._wanted = [sub for sub in subscriptions if sub.retained_only]
        self.read = asyncio.Event()  # set once a read succeeded
        if not self._wanted:
            self.read.set()
        self._task: asyncio.Task[None] | None = None

    @property
    def done(self) -> bool:
        return self.read.is_set()

    def start(self, handler: MessageHandler) -> None:
        if self.done or self._task is not None:
            return
        self._task = asyncio.create_task(self._read(handler))

    async def _read(self, handler: MessageHandler) -> None:
        try:
            count = await read_retained(self._options, self._wanted, handler)
        except (aiomqtt.MqttError, OSError, TimeoutError) as exc:
            log.warning(
                "mqtt_retained_not_read", error=str(exc), action="read again on the next connection"
            )
        else:
            self.read.set()
            log.info("mqtt_retained_read", messages=count)
        finally:
            self._task = None

    async def stop(self) -> None:
        """End a read under way, within LOOK_BACK_ENDS_WITHIN. Cancelled again until it
        ends: one cancel that came with a SUBACK was swallowed (3.11's wait_for inside
        aiomqtt's subscribe), and the read went on after the session had stopped."""
        task = self._task
        if task is not None:
            await cancel_until_ended({task}, within=LOOK_BACK_ENDS_WITHIN)
