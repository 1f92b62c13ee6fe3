"""A fleet moved to shards (or back, or to fewer shards) leaves no earlier bridge's
availability and info retained: the new layout's looking bridge clears them."""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator
from typing import Any

from goe2mqtt.config.settings import parse_settings
from goe2mqtt.homeassistant.bridge_device import render_bridge_discovery
from goe2mqtt.mqtt.topics import Topics
from goe2mqtt.sim.broker import MosquittoBroker
from goe2mqtt.sim.simulator import Simulator

from ..conftest import MqttProbe, RunningBridge, make_settings


def layout(raw: dict[str, Any], shards: int | None) -> list[dict[str, Any]]:
    """The configs of one instance (shards None) or of each shard."""
    if shards is None:
        return [raw]
    client_id = raw["mqtt"]["client_id"]
    return [
        {**raw, "mqtt": {**raw["mqtt"], "client_id": f"{client_id}-{index}"},
         "shard": {"index": index, "count": shards}}
        for index in range(shards)
    ]  # fmt: skip


@contextlib.asynccontextmanager
async def running(raw: dict[str, Any], shards: int | None, probe: MqttProbe) -> AsyncIterator[None]:
    """The layout running, each of its bridges online; stopped (offline) at the end."""
    base = raw["mqtt"]["base_topic"]
    bridges = [RunningBridge(parse_settings(config)) for config in layout(raw, shards)]
    ours = [Topics(base)] if shards is None else [Topics(base, i) for i in range(shards)]
    mark = probe.mark()
    for bridge in bridges:
        await bridge.start()
    try:
        for topics in ours:
            await probe.wait_text(topics.bridge_availability, "online", since=mark)
            await probe.wait_for(topics.bridge_info, lambda m: bool(m.payload), since=mark)
        yield
    finally:
        mark = probe.mark()
        for bridge in bridges:
            await bridge.stop()
        for topics in ours:
            await probe.wait_text(topics.bridge_availability, "offline", since=mark)


async def retained_under(broker: MosquittoBroker, base: str) -> dict[str, str]:
    """What a new subscriber gets under {base}/bridge/: topic -> text."""
    async with MqttProbe(broker.host, broker.port, [f"{base}/bridge/#"]) as fresh:
        return {m.topic: m.text for m in fresh.messages if m.retain}


async def cleared(probe: MqttProbe, topics: Topics, mark: int) -> None:
    for topic in (topics.bridge_availability, topics.bridge_info):
        await probe.wait_for(topic, lambda m: m.payload == b"", since=mark)


async def test_moving_to_shards_fewer_shards_and_back_leaves_no_earlier_bridge_retained(
    broker: MosquittoBroker, simulator: Simulator
) -> None:
    raw = make_settings(broker, simulator, chargers=("garage", "carport"))
    base = raw["mqtt"]["base_topic"]
    single, gone, alive = Topics(base), Topics(base, 2), Topics(base, 3)
    async with MqttProbe(broker.host, broker.port, [f"{base}/#"]) as probe:
        async with running(raw, None, probe):
            pass  # {base}/bridge/availability "offline" and its info stay retained
        # A shard of an earlier count 3, stopped; and one that still says online (a
        # bridge of another layout that runs, or died with the broker down): left alone.
        await probe.publish(gone.bridge_availability, "offline", retain=True)
        await probe.publish(gone.bridge_info, '{"version": "old"}', retain=True)
        await probe.publish(alive.bridge_availability, "online", retain=True)
        await probe.publish(alive.bridge_info, '{"version": "old"}', retain=True)
        mark = probe.mark()
        async with running(raw, 2, probe):
            await cleared(probe, single, mark)
            await cleared(probe, gone, mark)
        assert await retained_under(broker, base) == {
            f"{base}/bridge/shard-0/availability": "offline",
            f"{base}/bridge/shard-0/info": probe.last_text(f"{base}/bridge/shard-0/info"),
            f"{base}/bridge/shard-1/availability": "offline",
            f"{base}/bridge/shard-1/info": probe.last_text(f"{base}/bridge/shard-1/info"),
            alive.bridge_availability: "online",
            alive.bridge_info: '{"version": "old"}',
        }
        mark = probe.mark()
        async with running(raw, 1, probe):  # one shard of one: shard-1 is stale now
            await cleared(probe, Topics(base, 1), mark)
        mark = probe.mark()
        async with running(raw, None, probe):  # back to one instance
            await cleared(probe, Topics(base, 0), mark)
        assert await retained_under(broker, base) == {
            single.bridge_availability: "offline",
            single.bridge_info: probe.last_text(single.bridge_info),
            alive.bridge_availability: "online",
            alive.bridge_info: '{"version": "old"}',
        }


async def test_the_earlier_bridge_device_leaves_home_assistant_with_its_topics(
    broker: MosquittoBroker, simulator: Simulator
) -> None:
    """The bridge device's discovery configs point at its availability and info: once
    those were cleared, its sensors stayed in Home Assistant for good, a device
    "goe2mqtt" (or "goe2mqtt shard 2") unavailable beside the layout's own."""
    raw = make_settings(broker, simulator, chargers=("garage", "carport"))
    base, prefix = raw["mqtt"]["base_topic"], raw["mqtt"]["discovery_prefix"]
    single = Topics(base)
    earlier = render_bridge_discovery(prefix=prefix, topics=single)
    current = {
        topic
        for index in range(2)
        for topic in render_bridge_discovery(prefix=prefix, topics=Topics(base, index))
    }
    async with MqttProbe(broker.host, broker.port, [f"{base}/#", f"{prefix}/#"]) as probe:
        async with running(raw, None, probe):
            for topic in earlier:
                await probe.wait_for(topic, lambda m: bool(m.payload))
        # Another installation whose base topic maps to the same node id: not ours.
        foreign = next(iter(earlier)).replace("/version/", "/other/")
        await probe.publish(foreign, '{"availability_topic": "other/bridge/availability"}',
                            retain=True)  # fmt: skip
        mark = probe.mark()
        async with running(raw, 2, probe):
            await cleared(probe, single, mark)
            for topic in earlier:
                await probe.wait_for(topic, lambda m: m.payload == b"", since=mark)
    async with MqttProbe(broker.host, broker.port, [f"{prefix}/sensor/#"]) as fresh:
        bridges = {m.topic for m in fresh.messages if m.retain and "_bridge" in m.topic}
    assert bridges == {*current, foreign}  # the two shards' devices, no earlier one
