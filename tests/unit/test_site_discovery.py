"""A site as a Home Assistant device (issue 31, item 9): what it announces reads the
site's state as the controller writes it, and what it sends the site understands."""

from __future__ import annotations

import json
import re
from typing import Any

from goe2mqtt.config.site import SiteChargerSettings, SiteSettings
from goe2mqtt.homeassistant.site_device import render_site_discovery
from goe2mqtt.mqtt.topics import Topics
from goe2mqtt.site.commands import parse_site_command
from goe2mqtt.site.controller import SiteController
from goe2mqtt.site.meter import MeterReading

SITE = SiteSettings(
    name="house", fuse=25, meter_topic="home/meter",
    chargers=(SiteChargerSettings(name="garage"), SiteChargerSettings(name="car-port")),
)  # fmt: skip


def configs() -> dict[str, dict[str, Any]]:
    rendered = render_site_discovery(prefix="homeassistant", topics=Topics("goe"), site=SITE)
    return {topic: json.loads(payload) for topic, payload in rendered.items()}


def test_one_device_with_the_issues_entities() -> None:
    found = configs()
    keys = {topic.split("/")[3].removeprefix("site_house_") for topic in found}
    assert keys == {"mode", "fuse", "meter_age", "fallback", "available_l1", "available_l2",
                    "available_l3", "allocated_garage", "allocated_car-port"}  # fmt: skip
    assert {c["device"]["identifiers"][0] for c in found.values()} == {"goe2mqtt_goe_site_house"}
    assert len({c["unique_id"] for c in found.values()}) == len(found)
    for config in found.values():
        assert config["state_topic"] == "goe/site/house/state"
        assert config["availability_topic"] == "goe/bridge/availability"
    # Under the chargers' node, so that a removed site's configs are seen as stale.
    assert "homeassistant/select/goe/site_house_mode/config" in found
    assert "homeassistant/binary_sensor/goe/site_house_fallback/config" in found
    assert found["homeassistant/select/goe/site_house_mode/config"]["unique_id"] == \
        "goe_site_house_mode"  # fmt: skip


def test_the_templates_read_keys_the_state_has() -> None:
    controller = SiteController(SITE)
    controller.meter(MeterReading(currents=(3.0, 3.0, 3.0)), 0)
    controller.decide(0)
    state = controller.state(0)
    read = set()
    for config in configs().values():
        for path in re.findall(r"value_json((?:\.\w+|\['[\w-]+'\])+)", config["value_template"]):
            value: Any = state
            for part in re.findall(r"\.(\w+)|\['([\w-]+)'\]", path):
                key = part[0] or part[1]
                assert isinstance(value, dict), path
                assert key in value, path
                value = value[key]
            read.add(path)
    assert ".chargers['car-port'].allocated" in read
    assert ".room.l2" in read


def test_the_select_and_the_number_send_what_the_site_understands() -> None:
    found = configs()
    mode = found["homeassistant/select/goe/site_house_mode/config"]
    payload = mode["command_template"].replace("{{ value }}", "pv").encode()
    assert parse_site_command("set_mode", payload).arguments == {"mode": "pv"}
    assert mode["command_topic"] == "goe/site/house/cmd/set_mode"
    fuse = found["homeassistant/number/goe/site_house_fuse/config"]
    payload = fuse["command_template"].replace("{{ value }}", "20.0").encode()
    assert parse_site_command("set_fuse", payload).arguments == {"fuse": 20.0}
