"""What the application carries for its handlers: the bridge's view and the settings."""

from __future__ import annotations

from typing import Any

from aiohttp import web

from goe2mqtt.config.http import HttpSettings
from goe2mqtt.web.view import BridgeLook

LOOK: web.AppKey[BridgeLook] = web.AppKey("look", BridgeLook)
SETTINGS: web.AppKey[HttpSettings] = web.AppKey("settings", HttpSettings)
# What the first scrape makes and later ones reuse (web/scrape.py's Scraper): made then,
# so that prometheus_client is imported only by a bridge that Prometheus scrapes.
SCRAPER_SLOT: web.AppKey[dict[str, Any]] = web.AppKey("scraper_slot", dict)
