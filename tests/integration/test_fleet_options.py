"""What a fleet operator turns off: discovery and the per-entity topics."""

from __future__ import annotations

import json

import pytest

from goe2mqtt.charger.loop import Charger
from goe2mqtt.config.problems import ConfigError
from goe2mqtt.config.settings import parse_settings
from goe2mqtt.mqtt.topics import Topics
from goe2mqtt.sim.simulator import SimulatedCharger

from ..conftest import RecordingPublisher

Setup = tuple[Charger, SimulatedCharger, RecordingPublisher]


async def test_without_leaf_topics_a_charger_publishes_its_json_state_only(
    polled_charger: Setup,
) -> None:
    bridge, simulated, _ = polled_charger
    publisher = RecordingPublisher()
    lean = Charger(
        bridge.settings, bridge.transport, publisher, topics=Topics("goe2mqtt"),
        discovery_prefix=None, leaf_topics=False,
    )  # fmt: skip
    assert await lean.refresh()
    assert set(publisher.retained) == {
        "goe2mqtt/garage/state", "goe2mqtt/garage/availability"
    }  # fmt: skip
    state = json.loads(publisher.retained["goe2mqtt/garage/state"])
    assert state["car_status"] == "charging"
    assert len(state) > 100  # every value, in one message
    simulated.amp = 10
    assert await lean.refresh()
    assert json.loads(publisher.retained["goe2mqtt/garage/state"])["charging_current"] == 10


def test_leaf_topics_off_needs_discovery_off() -> None:
    raw = {"mqtt": {"host": "127.0.0.1", "leaf_topics": False},
           "chargers": [{"name": "a", "serial": "012345", "token": "t-1"}]}  # fmt: skip
    with pytest.raises(ConfigError, match=r"mqtt\.leaf_topics: false needs discovery: false"):
        parse_settings(raw)
    raw["mqtt"]["discovery"] = False
    assert parse_settings(raw).mqtt.leaf_topics is False
