"""What the application carries for its handlers: the bridge's view and the settings."""

from __future__ import annotations

from aiohttp import web

from goe2mqtt.config.http import HttpSettings
from goe2mqtt.web.view import BridgeLook

LOOK: web.AppKey[BridgeLook] = web.AppKey("look", BridgeLook)
SETTINGS: web.AppKey[HttpSettings] = web.AppKey("settings", HttpSettings)
