"""Which retained discovery configs under our node the bridge clears at start: the ones
a goe2mqtt published (every version says so in ``origin``) for what is no longer
configured, never another tool's that happens to share the node id and our base topic."""

from __future__ import annotations

import json

import structlog

from goe2mqtt.homeassistant.discovery import ORIGIN, node_id
from goe2mqtt.sim.broker import MosquittoBroker

from ..conftest import MqttProbe, RunningBridge, Setup, until


async def test_another_tools_config_under_our_node_and_base_topic_stays(
    broker: MosquittoBroker, setup: Setup, probe: MqttProbe
) -> None:
    """Found in review: any config under our node whose state or availability topic lay
    under our base topic was taken for ours. A user whose base_topic is home/garage and
    whose own sensors (Node-RED, a hand-written config) publish under home/garage/... with
    the natural node id home_garage lost them from Home Assistant at every start."""
    base, prefix = setup.topics.base, setup.prefix
    node = node_id(base)
    ours = f"{prefix}/sensor/{node}/oldcharger_energy_total/config"
    theirs = {
        f"{prefix}/binary_sensor/{node}/door/config": {
            "name": "Garage door", "state_topic": f"{base}/door", "origin": {"name": "Node-RED"},
        },
        f"{prefix}/sensor/{node}/meter_power/config": {
            "name": "Meter", "state_topic": f"{base}/meter/power",  # written by hand: no origin
            "availability_topic": f"{base}/meter/online",
        },
    }  # fmt: skip
    old = {"name": "old", "state_topic": setup.state("oldcharger", "energy_total"),
           "origin": ORIGIN}  # fmt: skip
    for topic, config in (*theirs.items(), (ours, old)):
        await probe.publish(topic, json.dumps(config), retain=True)
        await probe.wait_for(topic)
    running = RunningBridge(setup.settings)
    with structlog.testing.capture_logs() as logs:
        await running.start()
        try:
            await probe.wait_for(ours, lambda m: m.payload == b"")
            mqtt = running.bridge.mqtt
            await until(lambda: mqtt.connected and mqtt.backlog == 0, "all sent")
            await probe.publish(f"{prefix}/fence", b"1")
            await probe.wait_for(f"{prefix}/fence")
        finally:
            await running.stop()
    [removal] = [e for e in logs if e["event"] == "discovery_removed"]
    assert removal["configs"] == 1
    async with MqttProbe(broker.host, broker.port, [f"{prefix}/+/{node}/+/config"]) as fresh:
        retained = {m.topic for m in fresh.messages if m.payload}
    assert set(theirs) <= retained
    assert ours not in retained
