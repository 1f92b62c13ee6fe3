"""Chargers on their own MQTT (transport: mqtt): their topics, routed to their transports.

The charger's side (goe/charger_mqtt) knows the topics and payloads, the MQTT layer
knows the broker; this joins them: the subscriptions, the routing of what arrives,
and a way to publish a write. The chargers' topics live on a connection of their own
(mqtt/stream), never on the session that carries commands: nothing published there,
however much, can delay or crowd out a command.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from goe2mqtt.config.charger import ChargerSettings
from goe2mqtt.goe.charger_mqtt import ChargerMqttTransport
from goe2mqtt.goe.client import Rejected, TransientError
from goe2mqtt.goe.pushed import KeyFilter
from goe2mqtt.mqtt.client import InboundMessage, MqttOptions
from goe2mqtt.mqtt.session import PublishRefused
from goe2mqtt.mqtt.stream import NotAcknowledged, NotConnected, StreamConnection


class OwnMqttChargers:
    def __init__(
        self, chargers: Iterable[ChargerSettings], options: MqttOptions, keys: KeyFilter
    ) -> None:
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
        # Opened only when some charger publishes to the broker itself.
        self.connection: StreamConnection | None = None
        if self.transports:
            filters = [f for t in self.transports.values() for f in t.filters]
            self.connection = StreamConnection(options, filters, self.route)

    def info(self) -> dict[str, Any]:
        """bridge/info: the chargers' own connection, when there is one."""
        if self.connection is None:
            return {}
        return {"charger_mqtt": {"connected": self.connection.connected,
                                 "connections": self.connection.connections,
                                 "received": self.connection.received[0]}}  # fmt: skip

    def route(self, message: InboundMessage) -> None:
        """Hand a charger's message to its transport (in paho's callback: cheap)."""
        # {prefix}/{serial}/{key} or .../{key}/result, perhaps with a leading slash
        head = message.topic.lstrip("/").rpartition("/")[0]
        charger = self._bases.get(head) or self._bases.get(head.rpartition("/")[0])
        if charger is not None:
            charger.take(message.topic, message.payload)

    async def _send(self, topic: str, payload: bytes) -> None:
        if self.connection is None:
            raise TransientError("not sent: no connection for the chargers' own MQTT")
        try:
            await self.connection.publish(topic, payload)
        except PublishRefused as exc:
            raise Rejected(f"the broker refused the write ({exc.reason})") from None
        except NotAcknowledged as exc:
            raise TransientError(f"perhaps not sent: {exc}") from None
        except NotConnected as exc:
            raise TransientError(str(exc)) from None
