"""The discovery configs the bridge leaves on the broker, pinned byte for byte.

discovery_pin.json holds what two chargers' bridge retained under the discovery prefix
when it was written (bridge, chargers; goe2mqtt's version left out): a first start, Home
Assistant's birth and a reconnect to a broker that lost everything must each leave
exactly that on the broker, however the bridge keeps or builds its configs meanwhile.
"""

from __future__ import annotations

import json
from pathlib import Path

from goe2mqtt.config.settings import parse_settings
from goe2mqtt.homeassistant.discovery import ORIGIN
from goe2mqtt.sim.broker import MosquittoBroker
from goe2mqtt.sim.simulator import Simulator

from ..conftest import SERIALS, WAIT, MqttProbe, RunningBridge, make_settings, until

PIN = Path(__file__).with_name("discovery_pin.json")
BASE, PREFIX = "goe2mqtt", "homeassistant"
# The origin block names goe2mqtt's version: the pin must outlive a release.
_ORIGIN = json.dumps(ORIGIN, sort_keys=True, ensure_ascii=False).encode()


def pinned() -> dict[str, bytes]:
    return {topic: text.encode() for topic, text in json.loads(PIN.read_text()).items()}


def configs_since(probe: MqttProbe, mark: int) -> dict[str, bytes]:
    """The last config each topic got since ``mark`` (clears dropped: nothing retained),
    the origin block normalized."""
    latest: dict[str, bytes] = {}
    for message in probe.since(mark):
        if message.topic.endswith("/config"):
            latest[message.topic] = message.payload.replace(_ORIGIN, b'"@origin@"')
    return {topic: payload for topic, payload in latest.items() if payload}


async def all_again(
    probe: MqttProbe, mark: int, running: RunningBridge, within: float = WAIT
) -> dict[str, bytes]:
    """Once every pinned topic came again since ``mark`` and the bridge owes nothing."""
    expected = pinned()
    await until(
        lambda: (
            expected.keys() <= configs_since(probe, mark).keys()
            and running.bridge.mqtt.backlog == 0
        ),
        "every pinned config again",
        within=within,
    )
    return configs_since(probe, mark)


def bridge_for(broker: MosquittoBroker, simulator: Simulator) -> RunningBridge:
    raw = make_settings(broker, simulator, chargers=("garage", "carport"), scan_interval=60)
    raw["mqtt"].update(base_topic=BASE, discovery_prefix=PREFIX)
    simulator.charger(SERIALS["carport"]).plug_in()  # a car: other ranges than the garage's
    return RunningBridge(parse_settings(raw))


async def test_start_birth_and_reconnect_leave_the_pinned_configs(
    own_broker: MosquittoBroker, simulator: Simulator
) -> None:
    running = bridge_for(own_broker, simulator)
    subscriptions = [f"{PREFIX}/#"]
    async with MqttProbe(own_broker.host, own_broker.port, subscriptions) as probe:
        await running.start()
        try:
            assert await all_again(probe, 0, running) == pinned()

            mark = probe.mark()  # Home Assistant restarted: everything again, the same
            await probe.publish(f"{PREFIX}/status", "online")
            assert await all_again(probe, mark, running) == pinned()

            own_broker.restart()  # it lost everything retained: the bridge puts it back
            async with MqttProbe(own_broker.host, own_broker.port, subscriptions) as fresh:
                assert await all_again(fresh, 0, running, 3 * WAIT) == pinned()
        finally:
            await running.stop()
