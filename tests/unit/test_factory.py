"""goe/factory: every transport is built in one place, from a charger's settings - cloud
and local polling, the local and the cloud's websocket, and the charger's own MQTT, whose
topics reach it through the ChargerBroker it is handed (goe/ knows no MQTT client)."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Sequence
from typing import Any

import aiohttp
import pytest

from goe2mqtt.bridge.own_mqtt import StreamBroker
from goe2mqtt.config.charger import ChargerSettings
from goe2mqtt.config.settings import parse_settings
from goe2mqtt.goe.charger_mqtt import ChargerMqttTransport
from goe2mqtt.goe.client import GoeClient
from goe2mqtt.goe.factory import NoBroker, open_transport
from goe2mqtt.goe.transport import (
    AskingTransport,
    PushTransport,
    Rejected,
    TopicTaker,
    TransientError,
)
from goe2mqtt.goe.ws_transport import WebSocketTransport
from goe2mqtt.mqtt.client import InboundMessage, MqttOptions

TOKEN = "a-token-of-the-right-length-0123456789"


class FakeBroker:
    """A ChargerBroker: records what is subscribed, hands back what is published."""

    def __init__(self) -> None:
        self.subscribed: list[tuple[tuple[str, ...], TopicTaker]] = []
        self.published: list[tuple[str, bytes]] = []
        self.answer: bytes | None = b"success"  # the charger's {key}/result

    def subscribe(self, filters: Sequence[str], take: TopicTaker) -> None:
        self.subscribed.append((tuple(filters), take))

    def deliver(self, topic: str, payload: bytes) -> None:
        for _, take in self.subscribed:
            take(topic, payload)

    async def publish(self, topic: str, payload: bytes) -> None:
        self.published.append((topic, payload))
        if self.answer is not None:  # the charger answers on {key}/result, a moment later
            result = topic.removesuffix("/set") + "/result"
            asyncio.get_running_loop().call_soon(self.deliver, result, self.answer)


def charger(**section: Any) -> ChargerSettings:
    settings = parse_settings({"mqtt": {"host": "127.0.0.1"},
                               "chargers": [{"name": "garage", **section}]})  # fmt: skip
    return settings.chargers[0]


@pytest.fixture
async def http() -> AsyncIterator[aiohttp.ClientSession]:
    async with aiohttp.ClientSession() as session:
        yield session


async def test_cloud_polling(http: aiohttp.ClientSession) -> None:
    transport = open_transport(http, charger(serial="012345", token=TOKEN))
    assert isinstance(transport, GoeClient)
    assert not isinstance(transport, PushTransport)
    assert transport._base_url == "https://012345.api.v3.go-e.io"
    assert transport._headers == {"Authorization": f"Bearer {TOKEN}"}
    assert not transport._local


async def test_local_polling(http: aiohttp.ClientSession) -> None:
    transport = open_transport(http, charger(host="192.168.1.20"))
    assert isinstance(transport, GoeClient)
    assert (transport._base_url, transport._local) == ("http://192.168.1.20", True)


async def test_local_websocket_with_local_http_to_fall_back_on(
    http: aiohttp.ClientSession,
) -> None:
    transport = open_transport(http, charger(host="192.168.1.20", password="pw-of-the-charger"))
    assert isinstance(transport, WebSocketTransport)
    assert isinstance(transport, AskingTransport)
    assert transport.link.url == "ws://192.168.1.20/ws"
    assert transport.connection == "polling (websocket: not connected yet)"
    fallback = transport._fallback
    assert isinstance(fallback, GoeClient)
    assert (fallback._base_url, fallback._local) == ("http://192.168.1.20", True)


async def test_cloud_websocket_with_cloud_polling_to_fall_back_on(
    http: aiohttp.ClientSession,
) -> None:
    transport = open_transport(
        http,
        charger(serial="012345", token=TOKEN, password="pw-of-the-charger",
                transport="websocket"),
    )  # fmt: skip
    assert isinstance(transport, WebSocketTransport)
    assert transport.link.url == "wss://app.v3.go-e.io/012345"
    assert transport.connection == "polling (cloud websocket: not connected yet)"
    fallback = transport._fallback
    assert isinstance(fallback, GoeClient)
    assert fallback._base_url == "https://012345.api.v3.go-e.io"


async def test_own_mqtt_through_the_broker_it_is_handed(http: aiohttp.ClientSession) -> None:
    broker = FakeBroker()
    transport = open_transport(http, charger(serial="012345", transport="mqtt"), broker=broker)
    assert isinstance(transport, ChargerMqttTransport)
    assert isinstance(transport, PushTransport)
    [(filters, _)] = broker.subscribed
    assert filters == transport.filters
    assert "go-eCharger/012345/+" in filters
    assert "go-eCharger/012345/+/result" in filters

    # Its input arrives through the broker's callback ...
    broker.deliver("go-eCharger/012345/amp", b"16")
    assert transport.live
    assert await transport.status(("amp",)) == {"amp": 16}
    # ... and its writes leave through the broker's publish, answered on {key}/result.
    assert await transport.set({"amp": 10}) == {"amp": True}
    assert broker.published == [("go-eCharger/012345/amp/set", b"10")]
    broker.answer = b"value out of range"
    with pytest.raises(Rejected, match=r"charger refused amp \(value out of range\)"):
        await transport.set({"amp": 99})


async def test_own_mqtt_needs_a_broker(http: aiohttp.ClientSession) -> None:
    with pytest.raises(NoBroker, match="garage"):
        open_transport(http, charger(serial="012345", transport="mqtt"))


async def test_the_bridges_broker_routes_each_topic_to_the_transport_that_asked(
    http: aiohttp.ClientSession,
) -> None:
    """bridge/own_mqtt: two chargers (one on old firmware's leading slash) on one
    connection; each hears its own topics, results too, and nothing of the other's."""
    broker = StreamBroker(MqttOptions(host="127.0.0.1"))
    assert (broker.wanted, broker.info()) == (False, {})  # no connection for no charger
    garage = open_transport(http, charger(serial="012345", transport="mqtt"), broker=broker)
    carport = open_transport(
        http, charger(serial="067890", transport="mqtt", mqtt_prefix="/go-eCharger"),
        broker=broker,
    )  # fmt: skip
    assert isinstance(garage, ChargerMqttTransport)
    assert isinstance(carport, ChargerMqttTransport)
    assert broker.wanted
    # bridge/info shows the connection from the start, before it is opened.
    assert broker.info() == {"charger_mqtt": {"connected": False, "connections": 0,
                                              "received": 0}}  # fmt: skip

    def arrive(topic: str, payload: bytes) -> None:
        broker.route(InboundMessage(topic=topic, payload=payload, retain=False))

    arrive("go-eCharger/012345/amp", b"16")
    arrive("/go-eCharger/067890/amp", b"8")
    arrive("go-eCharger/999999/amp", b"32")  # no one's
    assert await garage.status(()) == {"amp": 16}
    assert await carport.status(()) == {"amp": 8}
    assert garage.skipped == carport.skipped == {}  # neither was handed the other's
    # Not connected yet: a write is not sent, and says so in goe/'s words.
    with pytest.raises(TransientError, match="no connection"):
        await garage.set({"amp": 10})
