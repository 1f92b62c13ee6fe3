"""Where a site's meter may publish: any topic but the bridge's own, the discovery
prefix's too (Home Assistant's mqtt_statestream, as its docs show it, publishes each
state under homeassistant/...)."""

from __future__ import annotations

import asyncio
from typing import Any

from goe2mqtt.config.settings import parse_settings
from goe2mqtt.sim.simulator import Simulator
from tests.conftest import MqttProbe, RunningBridge, cancel, make_settings
from tests.integration.test_site import House, Site, publish_meter, site_config


async def test_a_meter_under_the_discovery_prefix_is_read(
    broker: Any, simulator: Simulator
) -> None:
    """Housekeeping took every message under the discovery prefix for a discovery
    config: the meter's readings never reached the site, which fell back for good
    ("no meter reading for N s") and logged discovery_of_another_installation."""
    raw = make_settings(broker, simulator, chargers=("garage", "carport"))
    base, prefix = raw["mqtt"]["base_topic"], raw["mqtt"]["discovery_prefix"]
    meter = f"{prefix}/sensor/grid_power/state"
    raw["sites"] = [site_config(raw, meter, meter_timeout=30)]
    for serial in ("012345", "067890"):
        simulator.charger(serial).plug_in()
    async with MqttProbe(broker.host, broker.port, [f"{base}/#"]) as probe:
        running = RunningBridge(parse_settings(raw))
        await running.start()
        site = Site(probe, simulator, House(), base, meter)
        meter_task = asyncio.create_task(publish_meter(site))
        try:
            await site.state_where(lambda s: (s.get("meter") or {}).get("reading") is not None,
                                   within=20)  # fmt: skip
            assert site.state()["fallback"] is False
        finally:
            await cancel(meter_task)
            await running.stop()
