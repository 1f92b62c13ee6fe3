"""Names that would make two chargers or two installations share Home Assistant ids."""

from __future__ import annotations

import subprocess
import sys
import uuid
from pathlib import Path
from typing import Any

import pytest

from goe2mqtt.catalogue import ENTITIES
from goe2mqtt.config.settings import parse_settings
from goe2mqtt.homeassistant.discovery import node_id
from goe2mqtt.sim.broker import MosquittoBroker
from goe2mqtt.sim.simulator import Simulator

from ..conftest import MqttProbe, RunningBridge, make_settings, until, write_config


def _check_config(tmp_path: Path, raw: dict[str, Any]) -> subprocess.CompletedProcess[str]:
    """check-config as a user runs it, on ``raw`` written to a file."""
    return subprocess.run(
        [sys.executable, "-m", "goe2mqtt", "check-config", "--config",
         str(write_config(tmp_path, raw))],
        capture_output=True, text=True, timeout=60, check=False,
    )  # fmt: skip


def test_charger_names_whose_entities_collide_are_refused_naming_both(
    broker: MosquittoBroker, simulator: Simulator, tmp_path: Path
) -> None:
    raw = make_settings(broker, simulator, chargers=("garage", "carport"))
    raw["chargers"][1]["name"] = "garage_card_0"
    done = _check_config(tmp_path, raw)
    assert done.returncode == 2, done
    assert "chargers[1].name: 'garage_card_0' and chargers[0].name 'garage'" in done.stderr
    assert "rename one of them" in done.stderr


@pytest.mark.parametrize(
    ("first", "second"),
    [("garage-1", "garage_1"), ("garage", "garage_"), ("garage_1", "garage__1"),
     ("garage", "garage-card-0")],
)  # fmt: skip
def test_names_home_assistant_makes_one_entity_id_of_are_refused(
    broker: MosquittoBroker, simulator: Simulator, tmp_path: Path, first: str, second: str
) -> None:
    """Home Assistant makes an entity id of a slug: every run of - and _ one _, none at
    the ends (homeassistant.util.slugify of the device's and the entity's names, checked
    with the tests' 2024.3.3). garage-1 and garage_1 both make
    sensor.garage_1_energy_total: the second charger's entities got ids ending _2, which
    one by the order the configs came, and the check passed them."""
    raw = make_settings(broker, simulator, chargers=("garage", "carport"))
    raw["chargers"][0]["name"], raw["chargers"][1]["name"] = first, second
    done = _check_config(tmp_path, raw)
    assert done.returncode == 2, done
    assert f"chargers[1].name: '{second}' and chargers[0].name '{first}'" in done.stderr


@pytest.mark.parametrize(
    ("name", "shard"),
    [("goe2mqtt_last", None), ("goe2mqtt-last", None), ("goe2mqtt_shard_1_last", 2)],
)
def test_a_charger_name_making_the_bridge_devices_entity_ids_is_refused(
    broker: MosquittoBroker, simulator: Simulator, tmp_path: Path, name: str, shard: int | None
) -> None:
    """The bridge's Last error sensor is sensor.goe2mqtt_last_error (a shard's,
    sensor.goe2mqtt_shard_1_last_error): a charger named goe2mqtt_last made the same id of
    its error sensor, and Home Assistant gave the second one to arrive an id ending _2."""
    raw = make_settings(broker, simulator, chargers=("garage", "carport"))
    raw["chargers"][1]["name"] = name
    if shard is not None:
        raw["shard"] = {"index": 0, "count": shard}
        raw["mqtt"]["client_id"] = "goe2mqtt-{shard}"
    done = _check_config(tmp_path, raw)
    assert done.returncode == 2, done
    assert f"chargers[1].name: '{name}' would share" in done.stderr
    assert "with the bridge's own device: rename the charger" in done.stderr


async def test_an_installation_never_removes_another_ones_discovery(
    broker: MosquittoBroker, simulator: Simulator
) -> None:
    """inst/a and inst_a make one node id: starting B once removed all of A's entities."""
    run = uuid.uuid4().hex[:8]
    prefix = f"ha{run}"
    first = make_settings(broker, simulator, chargers=("garage",), scan_interval=60)
    first["mqtt"].update(base_topic=f"inst{run}/a", discovery_prefix=prefix)
    second = make_settings(broker, simulator, chargers=("carport",), scan_interval=60)
    second["mqtt"].update(base_topic=f"inst{run}_a", discovery_prefix=prefix)
    assert node_id(first["mqtt"]["base_topic"]) == node_id(second["mqtt"]["base_topic"])
    node = node_id(first["mqtt"]["base_topic"])

    def configs(probe: MqttProbe, charger: str) -> set[str]:
        return {
            m.topic for m in probe.messages
            if m.payload and f"/{node}/{charger}_" in m.topic
        }  # fmt: skip

    a = RunningBridge(parse_settings(first))
    await a.start()
    async with MqttProbe(broker.host, broker.port, [f"{prefix}/#"]) as probe:
        await until(lambda: len(configs(probe, "garage")) >= len(ENTITIES) // 2, "A's configs")
    await a.stop()
    async with MqttProbe(broker.host, broker.port, [f"{prefix}/#"]) as probe:  # all retained in
        published = configs(probe, "garage")
    assert len(published) >= len(ENTITIES) // 2
    async with MqttProbe(broker.host, broker.port, [f"{prefix}/#"]) as probe:
        b = RunningBridge(parse_settings(second))
        await b.start()
        try:
            await until(lambda: len(configs(probe, "carport")) >= len(published), "B's configs")
            # Past the moment B looks for stale configs, and all it sent has arrived.
            await until(lambda: b.bridge.mqtt.connected and b.bridge.mqtt.backlog == 0, "sent")
            await probe.publish(f"{prefix}/fence", b"1")
            await probe.wait_for(f"{prefix}/fence")
        finally:
            await b.stop()
        cleared = [m for m in probe.messages if not m.payload and f"/{node}/garage_" in m.topic]
    assert cleared == []
