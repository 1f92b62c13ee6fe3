"""The chargers of one run: built from their settings, announced, and stopped.

bridge/process builds the fleet here once the journal and the ledger are open, and
stops its poll loops and command tasks here, whatever a library did with the cancel.
"""

from __future__ import annotations

import asyncio
import functools
from collections.abc import Callable, Collection, Iterable, Sequence
from typing import Any

from goe2mqtt.bridge.desk import CommandDesk
from goe2mqtt.bridge.remembered import Remembered
from goe2mqtt.charger.loop import Charger
from goe2mqtt.config.settings import ChargerSettings, Settings
from goe2mqtt.goe.transport import Transport
from goe2mqtt.homeassistant.bridge_device import render_bridge_discovery
from goe2mqtt.homeassistant.site_device import render_site_discovery
from goe2mqtt.ledger.books import Ledger
from goe2mqtt.mqtt.session import MqttSession
from goe2mqtt.mqtt.topics import Topics
from goe2mqtt.util.aio import cancel_until_ended


def make_chargers(
    settings: Settings,
    transport: Callable[[ChargerSettings], Transport],
    mqtt: MqttSession,
    *,
    topics: Topics,
    prefix: str | None,
    confirm_delays: Sequence[float],
    desk: CommandDesk,
    remembered: Remembered,
    ledger: Ledger,
) -> dict[str, Charger]:
    """A Charger for each charger this bridge owns (a shard's share), by name."""
    chargers: dict[str, Charger] = {}
    for charger_settings in settings.owned_chargers():
        name = charger_settings.name
        chargers[name] = Charger(
            charger_settings,
            transport(charger_settings),
            mqtt,
            topics=topics,
            discovery_prefix=prefix,
            max_command_age=settings.mqtt.max_command_age,
            confirm_delays=confirm_delays,
            sink=desk,
            leaf_topics=settings.mqtt.leaf_topics,
            known_serial=remembered.serial(name),
            on_serial=functools.partial(remembered.learn_serial, name),
            known_facts=remembered.facts(name),
            on_facts=functools.partial(remembered.learn_facts, name),
            books=ledger.books_for(name, settings.tariff_for(charger_settings)),
        )
    return chargers


async def publish_bridge_discovery(
    mqtt: MqttSession, settings: Settings, topics: Topics, prefix: str
) -> None:
    """Home Assistant's configs of the bridge's own device and of each site's."""
    bridge_configs = render_bridge_discovery(prefix=prefix, topics=topics)
    for topic, payload in bridge_configs.items():
        await mqtt.publish_retained(topic, payload)
    for site in settings.sites:
        configs = render_site_discovery(prefix=prefix, topics=topics, site=site)
        for topic, payload in configs.items():
            await mqtt.publish_retained(topic, payload)


async def stop_pollers(
    chargers: Iterable[Charger],
    tasks: Collection[asyncio.Task[Any]],
    within: float | None = None,
) -> set[asyncio.Task[Any]]:
    """Stop the poll loops and command tasks, whatever a library did with the cancel;
    after ``within`` s (None: until they end) those still running are returned, cancelled
    but not awaited (the stop's deadline is worth more: bridge/stopping)."""
    for charger in chargers:
        charger.stop()
    # Again until they end: the chargers' own MQTT connection, cancelled while
    # connecting, lost its one cancel in aiomqtt and hung the stop.
    return await cancel_until_ended(tasks, within)
