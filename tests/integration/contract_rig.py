"""One charger on each of the five transports, behind one interface for the contract
suite (test_contract.py): the simulated charger, the bridge, and a probe on every topic
the bridge publishes (its own and Home Assistant's discovery)."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from typing import Any

from goe2mqtt.catalogue import BASELINE_KEYS, keep_known
from goe2mqtt.catalogue.facts import DeviceFacts
from goe2mqtt.config.settings import parse_settings
from goe2mqtt.homeassistant.discovery import render_discovery
from goe2mqtt.mqtt.topics import Topics
from goe2mqtt.sim.broker import MosquittoBroker
from goe2mqtt.sim.charger_mqtt import MqttCharger
from goe2mqtt.sim.simulator import Faults, SimulatedCharger, Simulator
from tests.conftest import SERIALS, TOKEN, MqttProbe, RunningBridge, cancel, make_settings, until
from tests.integration.test_websocket import PASSWORD

SERIAL = SERIALS["garage"]
CHARGER = "garage"

# The five ways a charger is reached; the pytest ids are the README table's columns.
CLOUD_POLL, LOCAL_POLL = "cloud poll", "local poll"
LOCAL_WEBSOCKET, CLOUD_WEBSOCKET = "local websocket", "cloud websocket"
OWN_MQTT = "own MQTT"
TRANSPORTS = (CLOUD_POLL, LOCAL_POLL, LOCAL_WEBSOCKET, CLOUD_WEBSOCKET, OWN_MQTT)
WEBSOCKETS = (LOCAL_WEBSOCKET, CLOUD_WEBSOCKET)

# The charger's own MQTT: how long unheard is offline (120 s in production; the
# simulated charger publishes a changed key every 0.1 s, so 2 s of silence is silence).
TEST_SILENCE = 2.0


@dataclass
class Rig:
    """One charger reached one way, the bridge serving it, a probe on its topics."""

    transport: str
    broker: MosquittoBroker
    sim: Simulator
    raw: dict[str, Any]
    probe: MqttProbe
    wallbox: MqttCharger | None = None  # own MQTT: the charger's publishing side
    running: RunningBridge | None = None
    _wallbox_task: asyncio.Task[None] | None = field(default=None, repr=False)

    @property
    def charger(self) -> SimulatedCharger:
        return self.sim.charger(SERIAL)

    @property
    def topics(self) -> Topics:
        return Topics(self.raw["mqtt"]["base_topic"])

    @property
    def prefix(self) -> str:
        return str(self.raw["mqtt"]["discovery_prefix"])

    def state(self, key: str) -> str:
        return self.topics.state(CHARGER, key)

    def cmd(self, service: str) -> str:
        return self.topics.command(CHARGER, service)

    @property
    def availability(self) -> str:
        return self.topics.availability(CHARGER)

    @property
    def pushes(self) -> bool:
        return self.transport not in (CLOUD_POLL, LOCAL_POLL)

    # --- the charger's side -----------------------------------------------------------

    async def start_charger(self, *, mid_stream: bool = False) -> None:
        """The charger's own MQTT: publishing, every key every 0.5 s. ``mid_stream``:
        its last full publish past when the bridge starts, so the bridge first hears
        only what changes (a car charging: its energy and power)."""
        if self.wallbox is None:
            return
        self.wallbox.republish = 0.0 if mid_stream else 0.5
        self._wallbox_task = asyncio.create_task(self.wallbox.run())
        if mid_stream:
            mark = self.probe.mark()
            await self.probe.wait_for(f"{self.wallbox.base}/fwv", since=mark)
            self.wallbox.republish = 3600.0  # from now on only what changes

    def publish_everything(self) -> None:
        """The charger's own MQTT: its periodic full publish, from now on every 0.5 s."""
        if self.wallbox is not None:
            self.wallbox.republish = 0.5

    async def unreachable(self) -> None:
        """The charger gone from every way the bridge could reach it."""
        if self.wallbox is not None:
            self.wallbox.silent = True
            return
        self.charger.faults = Faults(http_status=500, ws="refuse")
        await self.sim.close_sockets()

    def reachable(self) -> None:
        if self.wallbox is not None:
            self.wallbox.silent = False
        self.charger.faults = Faults()

    # --- the bridge -------------------------------------------------------------------

    async def start_bridge(self) -> RunningBridge:
        self.running = RunningBridge(parse_settings(self.raw))
        await self.running.start()
        return self.running

    def skipped(self) -> int:
        """What the bridge dropped of what the charger pushed (bridge/info's skipped)."""
        assert self.running is not None
        info = self.running.bridge.chargers[CHARGER].info()
        return sum(info.get("skipped", {}).values())

    async def whole_picture(self) -> None:
        """Online, and every key heard: the firmware's own value shown, every entity
        announced (a full publish may come in pieces)."""
        self.publish_everything()
        await self.probe.wait_text(self.availability, "online")
        await self.probe.wait_text(self.state("firmware"), self.charger.firmware)
        expected = self.expected_configs()
        await until(lambda: self.configs_seen() >= expected, "every entity announced")

    async def close(self) -> None:
        if self.running is not None:
            await self.running.stop()
        if self._wallbox_task is not None:
            await cancel(self._wallbox_task)

    # --- what the charger should have announced ---------------------------------------

    def expected_configs(self, *, baseline: bool = False) -> set[str]:
        """The discovery topics of the charger's entities (or of the baseline's)."""
        facts = (
            DeviceFacts(keys=BASELINE_KEYS)
            if baseline
            else DeviceFacts.from_status(keep_known(self.charger.status()))
        )
        configs, _ = render_discovery(
            prefix=self.prefix, topics=self.topics, charger=CHARGER, serial=SERIAL, facts=facts
        )
        return set(configs)

    def configs_seen(self, since: int = 0, until_mark: int | None = None) -> set[str]:
        """Discovery topics published with a config (not cleared) in that stretch."""
        messages = self.probe.messages[since:until_mark]
        return {m.topic for m in messages if self.is_config(m.topic) and m.payload}

    def is_config(self, topic: str) -> bool:
        """A discovery topic of the charger (not of the bridge's own device)."""
        return topic.startswith(f"{self.prefix}/") and f"/{self.topics.base}/{CHARGER}_" in topic

    def empty_payloads(self) -> list[str]:
        """Zero-length messages on a state or discovery topic: each is a deletion for
        Home Assistant and an empty msg.payload for a Node-RED flow."""
        return [m.topic for m in self.probe.messages if not m.payload]


def rig_settings(transport: str, broker: MosquittoBroker, sim: Simulator) -> dict[str, Any]:
    api = "cloud" if transport in (CLOUD_POLL, CLOUD_WEBSOCKET) else "local"
    raw = make_settings(broker, sim, transport=api)
    charger = raw["chargers"][0]
    if transport in WEBSOCKETS:
        charger.update({"transport": "websocket", "password": PASSWORD})
    elif transport == OWN_MQTT:
        run = raw["mqtt"]["base_topic"]
        raw["chargers"][0] = {"name": CHARGER, "serial": SERIAL, "transport": "mqtt",
                              "mqtt_prefix": f"{run}-charger", "scan_interval": 1}  # fmt: skip
    return raw


@contextlib.asynccontextmanager
async def rig_for(transport: str, broker: MosquittoBroker) -> AsyncIterator[Rig]:
    """The simulated charger reachable the transport's way, the probe subscribed; the
    bridge not started yet."""
    sim = Simulator([SimulatedCharger(SERIAL, TOKEN, password=PASSWORD)], delta_interval=0.1)
    await sim.start()
    await sim.serve_local(SERIAL)
    raw = rig_settings(transport, broker, sim)
    base, prefix = raw["mqtt"]["base_topic"], raw["mqtt"]["discovery_prefix"]
    subscriptions = [f"{base}/#", f"{prefix}/#"]
    wallbox = None
    if transport == OWN_MQTT:
        simulated = sim.charger(SERIAL)
        prefix_of_charger = raw["chargers"][0]["mqtt_prefix"]
        wallbox = MqttCharger(simulated, broker.host, broker.port, prefix=prefix_of_charger,
                              interval=0.1)  # fmt: skip
        subscriptions.append(f"{prefix_of_charger}/{SERIAL}/fwv")
    try:
        async with MqttProbe(broker.host, broker.port, subscriptions) as probe:
            rig = Rig(transport, broker, sim, raw, probe, wallbox)
            try:
                yield rig
            finally:
                await rig.close()
    finally:
        await sim.stop()


__all__ = ["TEST_SILENCE", "TRANSPORTS", "Rig", "rig_for", "until"]
