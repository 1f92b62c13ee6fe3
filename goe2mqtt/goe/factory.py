"""From a charger's settings to the Transport that reaches it: the one place every
transport is built (HTTP polling, cloud or local; the local or the cloud's websocket;
the charger's own MQTT).

The websocket (its protocol, bcrypt) and the charger-MQTT transports are imported by
the first charger that uses them: a bridge that only polls does not load them."""

from __future__ import annotations

from typing import TYPE_CHECKING

import aiohttp

from goe2mqtt.config.charger import ChargerSettings
from goe2mqtt.goe.client import GoeClient
from goe2mqtt.goe.pushed import ANY_KEY, KeyFilter
from goe2mqtt.goe.transport import ChargerBroker, Transport

if TYPE_CHECKING:
    from goe2mqtt.goe.ws_keys import DerivedKeys


class NoBroker(ValueError):
    """transport: mqtt, and no broker to reach the charger through."""


def goe_client(
    http: aiohttp.ClientSession, charger: ChargerSettings, *, timeout: float | None = None
) -> GoeClient:
    """The HTTP API v2 of one configured charger, cloud or local."""
    return GoeClient(
        http,
        charger.base_url,
        charger.token.get_secret_value() if charger.token else None,
        timeout=charger.timeout if timeout is None else timeout,
        local=charger.api == "local",
    )


def open_transport(
    http: aiohttp.ClientSession,
    charger: ChargerSettings,
    keys: KeyFilter = ANY_KEY,
    *,
    broker: ChargerBroker | None = None,
    derived_keys: DerivedKeys | None = None,
) -> Transport:
    """The charger's transport by its settings. ``keys``: what a pushing charger's
    status may hold (the catalogue's keys); ``broker``: where chargers on their own
    MQTT publish (needed only for them; the transport subscribes to its topics there);
    ``derived_keys``: where websocket chargers' derived keys are kept across restarts."""
    if charger.resolved_transport == "mqtt":
        from goe2mqtt.goe.charger_mqtt import ChargerMqttTransport

        if broker is None:
            raise NoBroker(f"charger {charger.name}: transport mqtt needs the broker")
        own = ChargerMqttTransport(
            charger.serial or "", charger.mqtt_prefix, name=charger.name,
            send=broker.publish, keys=keys,
        )  # fmt: skip
        broker.subscribe(own.filters, own.take)
        return own
    client = goe_client(http, charger)  # polling, and the websocket's fallback
    if charger.resolved_transport != "websocket":
        return client
    assert charger.password is not None  # the settings check it
    from goe2mqtt.goe.websocket import WebSocketLink
    from goe2mqtt.goe.ws_transport import WebSocketTransport

    cloud = charger.api == "cloud"
    token = charger.token.get_secret_value() if charger.token is not None else None
    link = WebSocketLink(
        http,
        charger.websocket_url,
        charger.password.get_secret_value(),
        name=charger.name,
        headers={"Authorization": f"Bearer {token}"} if cloud and token else None,
        keys=keys,
        serial=charger.serial,
        derived_keys=derived_keys,
    )
    return WebSocketTransport(link, client, cloud=cloud, keys=keys)
