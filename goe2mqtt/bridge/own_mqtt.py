"""The broker chargers on their own MQTT (transport: mqtt) publish to, as goe/ sees it.

goe/factory builds each such charger's transport and subscribes it to its topics on a
ChargerBroker; this is that broker, over the MQTT layer: it routes what arrives to
the transport whose filters match, and says a failed write in goe/'s errors. The
chargers' topics live on a connection of their own (mqtt/stream), never on the
session that carries commands: nothing published there, however much, can delay or
crowd out a command.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from paho.mqtt.client import topic_matches_sub

from goe2mqtt.goe.transport import Rejected, TopicTaker, TransientError
from goe2mqtt.mqtt.client import InboundMessage, MqttOptions
from goe2mqtt.mqtt.session import PublishRefused
from goe2mqtt.mqtt.stream import NotAcknowledged, NotConnected, StreamConnection


class StreamBroker:
    """A ChargerBroker: one connection (opened by run) for every charger's topics."""

    def __init__(self, options: MqttOptions) -> None:
        self._options = options
        self._filters: list[str] = []
        # A filter's levels before its first wildcard -> (filter, taker): a message is
        # looked up by its topic's parent levels, not matched against every filter.
        self._routes: dict[str, list[tuple[str, TopicTaker]]] = {}
        self.connection: StreamConnection | None = None

    @property
    def wanted(self) -> bool:
        """Some charger subscribed: run() has a connection to keep."""
        return bool(self._filters)

    def subscribe(self, filters: Sequence[str], take: TopicTaker) -> None:
        if self.connection is not None:
            raise RuntimeError("subscribe before the connection runs")
        for topic_filter in filters:
            self._filters.append(topic_filter)
            levels = topic_filter.split("/")
            literal = "/".join(levels[: _first_wildcard(levels)])
            self._routes.setdefault(literal, []).append((topic_filter, take))

    async def run(self) -> None:
        """Keep the connection (subscribed to every charger's filters) until cancelled."""
        self.connection = StreamConnection(self._options, self._filters, self.route)
        await self.connection.run()

    def info(self) -> dict[str, Any]:
        """bridge/info: the chargers' own connection, when some charger needs one."""
        if not self.wanted:
            return {}
        stream = self.connection  # None until run() opened it
        return {
            "charger_mqtt": {
                "connected": stream is not None and stream.connected,
                "connections": 0 if stream is None else stream.connections,
                "received": 0 if stream is None else stream.received[0],
            }
        }

    def route(self, message: InboundMessage) -> None:
        """Hand a message to the transports whose filters match (in paho's callback:
        cheap, a dict lookup per level of the topic)."""
        topic, head = message.topic, message.topic
        while True:
            for topic_filter, take in self._routes.get(head, ()):
                if topic_matches_sub(topic_filter, topic):
                    take(topic, message.payload)
            if not head:
                break
            head = head.rpartition("/")[0]

    async def publish(self, topic: str, payload: bytes) -> None:
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


def _first_wildcard(levels: Sequence[str]) -> int:
    return next((n for n, level in enumerate(levels) if level in ("+", "#")), len(levels))
