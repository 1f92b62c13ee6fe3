"""From a charger's settings to the Transport that reaches it."""

from __future__ import annotations

import aiohttp

from goe2mqtt.config.charger import ChargerSettings
from goe2mqtt.goe.client import GoeClient
from goe2mqtt.goe.push import WebSocketTransport
from goe2mqtt.goe.pushed import ANY_KEY, KeyFilter
from goe2mqtt.goe.transport import Transport
from goe2mqtt.goe.websocket import WebSocketLink


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


def http_transport(http: aiohttp.ClientSession, charger: ChargerSettings) -> Transport:
    """What polling and the websocket's fallback use."""
    return goe_client(http, charger)


def open_transport(
    http: aiohttp.ClientSession, charger: ChargerSettings, keys: KeyFilter = ANY_KEY
) -> Transport:
    """The charger's transport by its settings (mqtt is the bridge's: it needs the broker).
    ``keys``: what a pushing charger's status may hold (the catalogue's keys)."""
    if charger.channel != "websocket":
        return http_transport(http, charger)
    assert charger.password is not None  # the settings check it
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
    )
    return WebSocketTransport(link, http_transport(http, charger), cloud=cloud, keys=keys)
