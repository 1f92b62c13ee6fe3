"""A charger named "site" in an installation without sites (the name is reserved only
while sites are set): its commands are its own."""

from __future__ import annotations

import json

from goe2mqtt.config.settings import parse_settings
from goe2mqtt.sim.broker import MosquittoBroker
from goe2mqtt.sim.simulator import Simulator

from ..conftest import MqttProbe, RunningBridge, make_settings


async def test_a_charger_named_site_gets_its_commands_without_sites(
    broker: MosquittoBroker, simulator: Simulator
) -> None:
    """Found in review: every topic under {base}/site/ went to the sites, configured or
    not. The config takes a charger named "site" when no site is set, but its commands
    ({base}/site/cmd/...) reached no site and no desk: acknowledged, never answered."""
    raw = make_settings(broker, simulator, chargers=("garage",))
    raw["chargers"][0]["name"] = "site"
    base = raw["mqtt"]["base_topic"]
    async with MqttProbe(broker.host, broker.port, [f"{base}/#"]) as probe:
        running = RunningBridge(parse_settings(raw))
        await running.start()
        try:
            await probe.wait_text(f"{base}/site/availability", "online")
            payload = json.dumps({"amp": 10, "id": "mine"})
            result = await probe.command(f"{base}/site/cmd/set", payload)
        finally:
            await running.stop()
    assert (result["id"], result["ok"]) == ("mine", True), result
