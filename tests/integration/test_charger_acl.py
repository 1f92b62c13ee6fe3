"""The README's Mosquitto ACL for a charger on its own MQTT, as written there, on a real
broker: the charger and the bridge work through it, and a client that is neither can
no longer pose as the charger in either topic form (issue 27, item 4)."""

from __future__ import annotations

import asyncio
import contextlib
import json
import re
from collections.abc import Iterator
from pathlib import Path

import aiomqtt
import pytest

from goe2mqtt.config.settings import parse_settings
from goe2mqtt.mqtt.topics import Topics
from goe2mqtt.sim.broker import MosquittoBroker
from goe2mqtt.sim.charger import SimulatedCharger
from goe2mqtt.sim.charger_mqtt import MqttCharger
from tests.conftest import SENTINEL_ROOT, MqttProbe, RunningBridge, password_broker
from tests.integration.test_charger_mqtt import cancel

README = Path(__file__).resolve().parents[2] / "README.md"
SERIAL = "012345"  # the README's example charger
USERS = {"wallbox-012345": "wallbox-pw", "goe2mqtt": "bridge-pw", "intruder": "intruder-pw",
         "watcher": "watcher-pw"}  # fmt: skip
SPOOFED = 31


def readme_acl() -> str:
    """The ACL block that follows "A Mosquitto ACL" in the README, as a user copies it."""
    text = README.read_text(encoding="utf-8")
    found = re.search(r"A Mosquitto ACL.*?```\n(.*?)```", text, re.S)
    assert found, "the README shows a Mosquitto ACL"
    return found.group(1)


@pytest.fixture
def acl_broker(tmp_path: Path) -> Iterator[MosquittoBroker]:
    acl = tmp_path / "acl"
    # The README's ACL, and a watcher (as Home Assistant: goe2mqtt/#) that reads all
    # (and writes the probe's sentinel: MqttProbe waits for it to come back).
    acl.write_text(readme_acl() + "\nuser watcher\ntopic read #\ntopic write goe2mqtt/#\n"
                   f"topic write {SENTINEL_ROOT}/#\n")  # fmt: skip
    acl.chmod(0o644)
    with password_broker(tmp_path, USERS, f"acl_file {acl}") as running:
        yield running


async def test_the_readme_acl_lets_the_charger_and_the_bridge_work_and_no_one_else(
    acl_broker: MosquittoBroker, tmp_path: Path
) -> None:
    broker = acl_broker
    password_file = tmp_path / "bridge-password"
    password_file.write_text(USERS["goe2mqtt"])
    password_file.chmod(0o600)
    settings = parse_settings({
        "mqtt": {"host": broker.host, "port": broker.port, "username": "goe2mqtt",
                 "password_file": str(password_file), "base_topic": "goe2mqtt",
                 "client_id": "goe2mqtt-acl-test"},
        "chargers": [{"name": "garage", "serial": SERIAL, "transport": "mqtt"}],
    })  # fmt: skip
    topics = Topics("goe2mqtt")
    charger = SimulatedCharger(SERIAL)
    wallbox = MqttCharger(charger, broker.host, broker.port, interval=0.1, republish=2.0,
                          username="wallbox-012345", password=USERS["wallbox-012345"])  # fmt: skip
    running = RunningBridge(settings)
    publishing = asyncio.create_task(wallbox.run())
    try:
        async with MqttProbe(broker.host, broker.port, ["goe2mqtt/#"], username="watcher",
                             password=USERS["watcher"]) as probe:  # fmt: skip
            await running.start()
            try:
                current = topics.state("garage", "charging_current")
                await probe.wait_text(current, str(charger.amp))
                async with aiomqtt.Client(broker.host, broker.port, identifier="intruder",
                                          username="intruder",
                                          password=USERS["intruder"]) as intruder:  # fmt: skip
                    for form in (f"go-eCharger/{SERIAL}", f"/go-eCharger/{SERIAL}"):
                        with contextlib.suppress(aiomqtt.MqttError):  # refused or dropped
                            await intruder.publish(f"{form}/amp", str(SPOOFED), qos=1)
                            await intruder.publish(f"{form}/car", "2", qos=1)
                # Then a command: the bridge's write ({key}/set) and the charger's answer
                # and key topic pass the ACL, and the value comes from the charger.
                result = await probe.command(
                    topics.command("garage", "change_charging_power"), "10"
                )
                assert result["ok"] is True, result
                assert charger.amp == 10
                await probe.wait_text(current, "10")
                heard = running.bridge.chargers["garage"].info().get("skipped", {})
            finally:
                await running.stop()
    finally:
        await cancel(publishing)
    shown = [m.text for m in probe.messages if m.topic == current]
    assert str(SPOOFED) not in shown, shown
    assert "a message in the other topic form" not in heard  # the broker kept it out
    states = [json.loads(m.text) for m in probe.messages if m.topic == topics.json_state("garage")]
    assert all(s.get("charging_current") != SPOOFED for s in states)
