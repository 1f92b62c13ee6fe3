"""Chargers on their own MQTT (transport: mqtt): their topics, routed to their transports.

The charger's side (goe/charger_mqtt) knows the topics and payloads, the MQTT session
knows the broker; this joins them: the subscriptions, the routing of what arrives,
and a way to publish a write.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Iterable

from goe2mqtt.config.charger import ChargerSettings
from goe2mqtt.goe.charger_mqtt import ChargerMqttTransport
from goe2mqtt.goe.client import Rejected
from goe2mqtt.goe.pushed import KeyFilter
from goe2mqtt.mqtt.session import InboundMessage, PublishRefused, Subscription

Publish = Callable[[str, bytes], Awaitable[bool]]


class OwnMqttChargers:
    def __init__(
        self, chargers: Iterable[ChargerSettings], publish: Publish, keys: KeyFilter
    ) -> None:
        self._publish = publish
        self.transports = {
            c.name: ChargerMqttTransport(
                c.serial or "", c.mqtt_prefix, name=c.name, send=self._send, keys=keys
            )
            for c in chargers
            if c.channel == "mqtt"
        }
        # {prefix}/{serial} (without a leading slash) -> its charger
        self._bases = {
            base.lstrip("/"): t for t in self.transports.values() for base in t.bases
        }

    def subscriptions(self) -> list[Subscription]:
        # A stream: the charger publishes all the time, so never part of the retained phase.
        return [
            Subscription(topic, qos=0, stream=True)
            for transport in self.transports.values()
            for topic in transport.filters
        ]

    def route(self, message: InboundMessage) -> bool:
        """Hand a charger's message to its transport; False when it is no charger's."""
        if not self._bases:
            return False
        # {prefix}/{serial}/{key} or .../{key}/result, perhaps with a leading slash
        head = message.topic.lstrip("/").rpartition("/")[0]
        charger = self._bases.get(head) or self._bases.get(head.rpartition("/")[0])
        if charger is None:
            return False
        charger.take(message.topic, message.payload)
        return True

    async def _send(self, topic: str, payload: bytes) -> bool:
        try:
            return await self._publish(topic, payload)
        except PublishRefused as exc:
            raise Rejected(f"the broker refused the write ({exc})") from None
