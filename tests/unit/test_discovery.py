"""Home Assistant discovery payloads rendered from the catalogue (pure)."""

from __future__ import annotations

import json
import re
from dataclasses import replace
from typing import Any

import pytest

from goe2mqtt.catalogue import ENTITIES, ENTITIES_BY_KEY
from goe2mqtt.catalogue.facts import DeviceFacts
from goe2mqtt.homeassistant.configs import DiscoveryConfigs
from goe2mqtt.homeassistant.discovery import (
    ExpectedDiscovery,
    discovery_filter,
    expected_discovery_topics,
    node_id,
    render_discovery,
)
from goe2mqtt.mqtt.topics import Topics
from goe2mqtt.sim.simulator import SimulatedCharger

TOPICS = Topics("goe2mqtt")
# A HOME 11 kW with a cable plugged: every key of firmware 60.4, the current up to 16 A.
_HOME = SimulatedCharger("012345", model_name="home11")
_HOME.plug_in()
FACTS = DeviceFacts.from_status(_HOME.status())
COMPONENTS = {"sensor", "binary_sensor", "number", "select", "button", "switch", "text"}
TOPIC_RE = re.compile(
    r"^homeassistant/(sensor|binary_sensor|number|select|button|switch|text)/"
    r"[a-zA-Z0-9_-]+/[a-zA-Z0-9_-]+/config$"
)


def configs(facts: DeviceFacts = FACTS) -> dict[str, dict[str, Any]]:
    rendered, _ = render_discovery(
        prefix="homeassistant", topics=TOPICS, charger="garage", serial="012345", facts=facts
    )
    return {topic: json.loads(payload) for topic, payload in rendered.items()}


def config_of(key: str) -> dict[str, Any]:
    for topic, config in configs().items():
        if topic.endswith(f"/garage_{key}/config"):
            return config
    raise KeyError(key)


def test_one_valid_topic_per_entity() -> None:
    rendered = configs()
    assert len(rendered) == len(ENTITIES)
    assert all(TOPIC_RE.match(topic) for topic in rendered)


def test_every_config_has_identity_device_origin_and_availability() -> None:
    unique_ids = set()
    for config in configs().values():
        assert config["unique_id"].startswith("goe_012345_")
        unique_ids.add(config["unique_id"])
        component, entity_id = config["default_entity_id"].split(".")
        assert component in COMPONENTS
        assert entity_id.startswith("garage_")
        assert "object_id" not in config  # deprecated, warned about by current HA
        assert config["device"] == {
            "identifiers": ["goe_012345"],
            "name": "garage",
            "manufacturer": "go-e",
            "model": "go-eCharger_V4",
            "sw_version": "60.4",
            "serial_number": "012345",
        }
        assert config["origin"]["name"] == "goe2mqtt"
        assert config["origin"]["sw_version"]
        assert config["origin"]["support_url"]
        assert config["availability_mode"] == "all"
        topics = [a["topic"] for a in config["availability"]]
        assert topics[:2] == ["goe2mqtt/bridge/availability", "goe2mqtt/garage/availability"]
        assert config.get("entity_category") in (None, "diagnostic", "config")
    assert len(unique_ids) == len(ENTITIES)


def test_sensors_are_never_config_category() -> None:
    for topic, config in configs().items():
        if "/sensor/" in topic or "/binary_sensor/" in topic:
            assert config.get("entity_category") != "config", topic


@pytest.mark.parametrize(
    ("key", "device_class", "state_class", "unit"),
    [
        ("energy_total", "energy", "total_increasing", "kWh"),
        ("energy_since_car_connected", "energy", "total_increasing", "kWh"),
        ("charger_max_current", "current", "measurement", "A"),
        ("charging_power", "power", "measurement", "W"),
        ("voltage_l1", "voltage", "measurement", "V"),
        ("temperature", "temperature", "measurement", "°C"),
        ("wifi_signal", "signal_strength", "measurement", "dBm"),
    ],
)
def test_classes_and_units_match_what_ha_accepts(
    key: str, device_class: str, state_class: str, unit: str
) -> None:
    config = config_of(key)
    assert config["device_class"] == device_class
    assert config["state_class"] == state_class
    assert config["unit_of_measurement"] == unit


def test_enum_sensors_carry_their_options_and_no_unit() -> None:
    for config in configs().values():
        if config.get("device_class") == "enum":
            assert config["options"]
            assert "unit_of_measurement" not in config
            assert "state_class" not in config
    assert config_of("car_status")["options"] == [
        "unknown",
        "idle",
        "charging",
        "waiting_for_car",
        "complete",
        "error",
        "initializing",
    ]


def test_number_for_the_charging_current() -> None:
    config = config_of("charging_current")
    assert config["command_topic"] == "goe2mqtt/garage/cmd/change_charging_power"
    assert config["state_topic"] == "goe2mqtt/garage/charging_current"
    assert (config["min"], config["max"], config["step"]) == (6, 16, 1)
    assert config["unit_of_measurement"] == "A"
    # Settable before the car is plugged in: only bridge and charger availability.
    assert [a["topic"] for a in config["availability"]] == [
        "goe2mqtt/bridge/availability",
        "goe2mqtt/garage/availability",
    ]


def test_select_for_the_phase_mode() -> None:
    config = config_of("phase_mode")
    assert config["command_topic"] == "goe2mqtt/garage/cmd/set_phase"
    assert config["options"] == ["auto", "1_phase", "3_phases"]
    assert config["entity_category"] == "config"
    assert len(config["availability"]) == 2  # usable without a car


def test_button_wallbox_control() -> None:
    config = config_of("wallbox_control")
    assert config["command_topic"] == "goe2mqtt/garage/cmd/wallbox_control"
    assert config["payload_press"] == "PRESS"
    assert "state_topic" not in config
    assert config["availability"][2] == {
        "topic": "goe2mqtt/garage/car_connected",
        "payload_available": "true",
        "payload_not_available": "false",
    }


def test_binary_sensors_use_the_published_payloads() -> None:
    config = config_of("charging_allowed")
    assert (config["payload_on"], config["payload_off"]) == ("true", "false")


def test_unknown_device_facts_still_render() -> None:
    config = next(iter(configs(DeviceFacts()).values()))
    assert config["device"]["model"] == "go-e Charger"
    assert "sw_version" not in config["device"]


def test_node_id_and_filter_fit_the_topic_rules() -> None:
    assert node_id("home/goe 2") == "home_goe_2"
    assert discovery_filter("homeassistant", "goe2mqtt") == "homeassistant/+/goe2mqtt/+/config"
    expected = expected_discovery_topics("homeassistant", "goe2mqtt", ["garage", "carport"])
    assert len(expected) == 2 * len(ENTITIES)
    assert set(configs()) <= expected


def test_topics_parse_only_command_topics() -> None:
    assert TOPICS.parse_command("goe2mqtt/garage/cmd/stop_charging") == ("garage", "stop_charging")
    assert TOPICS.parse_command("goe2mqtt/garage/state") is None
    assert TOPICS.parse_command("goe2mqtt/garage/cmd/x/y") is None
    assert TOPICS.parse_command("other/garage/cmd/stop_charging") is None


def test_availability_topics_name_chargers_never_the_bridge() -> None:
    assert TOPICS.charger_of_availability("goe2mqtt/garage/availability") == "garage"
    assert TOPICS.charger_of_availability("goe2mqtt/bridge/availability") is None
    assert TOPICS.charger_of_availability("goe2mqtt/bridge/shard-1/availability") is None
    assert TOPICS.charger_of_availability("goe2mqtt/garage/state") is None
    assert TOPICS.charger_of_availability("goe2mqtt//availability") is None
    assert TOPICS.charger_of_availability("other/garage/availability") is None


def test_a_chargers_retained_topics_are_all_it_publishes() -> None:
    retained = TOPICS.charger_retained("garage")
    assert TOPICS.availability("garage") in retained
    assert TOPICS.json_state("garage") in retained
    for entity in ENTITIES:
        if entity.value is not None:
            assert TOPICS.state("garage", entity.key) in retained
    assert all(topic.startswith("goe2mqtt/garage/") for topic in retained)
    assert not any("/cmd/" in topic for topic in retained)


def test_controls_publish_their_commands_at_qos_1() -> None:
    # QoS 0 commands would not wait in the bridge's persistent session.
    for config in configs().values():
        if "command_topic" in config:
            assert config["qos"] == 1
        else:
            assert "qos" not in config


def test_old_and_new_home_assistant_give_the_same_entity_ids() -> None:
    # HA before 2025.10 makes the id from device and entity name (slugified); newer HA
    # takes default_entity_id. Names are chosen so that both come out the same, but for
    # those named after a card, whose ids come from the slot's name (README says so).
    for config in configs(DeviceFacts.from_status(_HOME.status())).values():
        key = config["unique_id"].removeprefix("goe_012345_")
        name = ENTITIES_BY_KEY[key].name  # the catalogue's, whatever the card is called
        slug = re.sub(r"[^a-z0-9]+", "_", f"garage {name}".lower()).strip("_")
        _domain, object_id = config["default_entity_id"].split(".")
        assert object_id == slug, config["name"]


def test_the_ledgers_cost_sensors_are_in_the_tariffs_currency() -> None:
    rendered, _ = render_discovery(
        prefix="homeassistant", topics=TOPICS, charger="garage", serial="012345", facts=FACTS,
        currency="CHF",
    )  # fmt: skip
    by_key = {topic.split("/")[3].removeprefix("garage_"): json.loads(payload)
              for topic, payload in rendered.items()}  # fmt: skip
    for key in ("session_cost", "last_session_cost", "cost_this_month"):
        assert by_key[key]["device_class"] == "monetary"
        assert by_key[key]["unit_of_measurement"] == "CHF"
    assert by_key["session_cost"]["state_class"] == "total"
    assert by_key["energy_this_month"]["state_class"] == "total_increasing"
    assert by_key["energy_this_month"]["unit_of_measurement"] == "kWh"
    assert by_key["max_price"]["unit_of_measurement"] == "ct/kWh"  # not a cost: its own unit


def _card_sensors(names: list[str], *, legacy: bool = False) -> dict[int, dict[str, Any]]:
    charger = SimulatedCharger("012345", model_name="legacy" if legacy else "home11")
    charger.card_names = names + [""] * (10 - len(names))
    rendered = configs(DeviceFacts.from_status(charger.status()))
    return {slot: rendered[f"homeassistant/sensor/goe2mqtt/garage_card_{slot}_energy_this_month"
                           "/config"] for slot in range(10)}  # fmt: skip


def test_the_ledgers_card_sensors_are_named_after_the_cards() -> None:
    hostile = 'Eve\u202e\u200b\x00\n\t<b>"}' + "x" * 300
    sensors = _card_sensors(["Anna", "", hostile, "Bob", " bob ", "  Carl   Cox  ", "★ ⚡"])
    assert sensors[0]["name"] == "Anna energy this month"
    assert sensors[1]["name"] == "Card 1 energy this month"  # unnamed: the slot's name
    # Plain text on one line, bounded: no controls, bidi overrides or zero-width marks.
    title = sensors[2]["name"].removesuffix(" energy this month")
    assert title == ('Eve <b>"}' + "x" * 300)[:32]
    assert title.isprintable()  # false for controls, bidi overrides, zero-width marks
    # A name two cards share stands for neither: each keeps its slot's.
    assert (sensors[3]["name"], sensors[4]["name"]) == (
        "Card 3 energy this month",
        "Card 4 energy this month",
    )
    assert sensors[5]["name"] == "Carl Cox energy this month"
    assert sensors[6]["name"] == "Card 6 energy this month"  # no letter to make an id of
    # The identity stays the slot's: renaming the card renames the entity, no new one.
    for slot, config in sensors.items():
        assert config["unique_id"] == f"goe_012345_card_{slot}_energy_this_month"
        assert config["default_entity_id"] == f"sensor.garage_card_{slot}_energy_this_month"
    renamed = _card_sensors(["Anna-Lena"])
    assert renamed[0]["name"] == "Anna-Lena energy this month"
    assert renamed[0]["unique_id"] == sensors[0]["unique_id"]


def test_card_sensor_names_from_old_firmware_and_from_the_facts_file() -> None:
    # Firmware before 60 reports one "cards" array; the name follows it the same way.
    assert _card_sensors(["Anna"], legacy=True)[0]["name"] == "Anna energy this month"
    charger = SimulatedCharger("012345", model_name="home11")
    charger.card_names[1] = "Bob"
    facts = DeviceFacts.from_status(charger.status())
    remembered = DeviceFacts.from_json(json.loads(json.dumps(facts.to_json())))
    assert remembered is not None
    assert remembered.names == facts.names
    assert ("card_1_energy_this_month", "Bob energy this month") in facts.names
    # A facts file from before these names (or edited by hand) still reads, cleaned.
    data = facts.to_json()
    del data["names"]
    assert DeviceFacts.from_json(data) == replace(facts, names=(), contacted=False)
    data["names"] = [["card_1_energy_this_month", "Bob\u202e" + "y" * 100]]
    loaded = DeviceFacts.from_json(data)
    assert loaded is not None
    assert loaded.names == (("card_1_energy_this_month", "Bob" + "y" * 61),)


AWKWARD = ['quote"d', "back\\slash", "{braces}", "ümlaut", "line\u2028sep", "emoji-\U0001f697", "x"]


def built(configs: DiscoveryConfigs) -> dict[str, bytes]:
    return dict(configs.members())


def rendered_whole(**arguments: Any) -> dict[str, bytes]:
    configs, _ = render_discovery(**arguments)
    return {topic: payload.encode() for topic, payload in configs.items()}


@pytest.mark.parametrize("text", AWKWARD)
def test_configs_built_from_templates_are_the_whole_renderings_byte_for_byte(text: str) -> None:
    """A charger's name, serial, card names and currency, however written: filling a
    template gives the bytes rendering each config whole gives, in the same order."""
    facts = replace(
        FACTS,
        names=((FACTS.names[0][0], f"{text} energy"), *FACTS.names[1:]),
        choices=(("transaction", ("no_transaction", "no_card", text, "{0}", "{1}")),),
    )
    arguments: dict[str, Any] = {
        "prefix": "homeassistant", "topics": Topics(f"base-{text}", shard=2), "charger": text,
        "serial": f"{text}-012345", "facts": facts, "currency": text,
    }  # fmt: skip
    assert list(built(DiscoveryConfigs(**arguments)).items()) == list(
        rendered_whole(**arguments).items()
    )


def test_a_template_is_never_taken_for_limits_equal_but_written_otherwise() -> None:
    """16 == 16.0 and 0.0 == -0.0, but JSON writes each its own way."""
    ranges = [
        (("charging_current", 6, 16),),
        (("charging_current", 6.0, 16.0),),
        (("charging_current", -0.0, 16),),
        (("charging_current", 0.0, 16),),
    ]
    for charger, limits in enumerate(ranges):
        facts = replace(FACTS, ranges=limits)
        arguments: dict[str, Any] = {
            "prefix": "homeassistant",
            "topics": TOPICS,
            "charger": f"c{charger}",
            "serial": f"{charger:06d}",
            "facts": facts,
        }
        assert built(DiscoveryConfigs(**arguments)) == rendered_whole(**arguments)
    assert DiscoveryConfigs(**{**arguments, "facts": replace(FACTS, ranges=ranges[0])}) != (
        DiscoveryConfigs(**{**arguments, "facts": replace(FACTS, ranges=ranges[1])})
    )


def test_configs_equal_when_built_from_the_same_and_heard_from_or_not() -> None:
    arguments: dict[str, Any] = {
        "prefix": "homeassistant", "topics": TOPICS, "charger": "garage", "serial": "012345",
    }  # fmt: skip
    heard = DiscoveryConfigs(**arguments, facts=FACTS)
    remembered = DiscoveryConfigs(**arguments, facts=replace(FACTS, contacted=False))
    assert heard == remembered
    assert heard.size == len(built(heard)) == len(list(heard.topics()))
    assert heard != DiscoveryConfigs(**arguments, facts=replace(FACTS, sw_version="61.0"))
    assert heard != DiscoveryConfigs(**{**arguments, "serial": "012346"}, facts=FACTS)


@pytest.mark.parametrize("text", AWKWARD)
def test_a_charger_like_another_is_built_from_its_templates_not_rendered(
    text: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    import goe2mqtt.homeassistant.configs as configs_module

    arguments: dict[str, Any] = {"prefix": "homeassistant", "topics": TOPICS, "facts": FACTS}
    built(DiscoveryConfigs(**arguments, charger="garage", serial="012345"))  # the templates
    renders: list[object] = []
    original = configs_module.render_config
    monkeypatch.setattr(
        configs_module, "render_config", lambda *a, **k: renders.append(a) or original(*a, **k)
    )
    other = built(DiscoveryConfigs(**arguments, charger=text, serial=f"{text}9"))
    assert renders == []
    assert other == rendered_whole(**arguments, charger=text, serial=f"{text}9")


@pytest.mark.parametrize(("prefix", "base"), [("homeassistant", "goe2mqtt"), ("ha/x", "inst/a")])
def test_the_expected_configs_are_told_from_the_topic_exactly_as_listing_them(
    prefix: str, base: str
) -> None:
    chargers = ["garage", "garage_card", "c-1", "x"]
    expected = expected_discovery_topics(prefix, base, chargers)
    told = ExpectedDiscovery(prefix, base, chargers)
    assert all(topic in told for topic in expected)
    components = sorted({entity.component for entity in ENTITIES})
    others = (
        expected_discovery_topics(prefix, base, ["carport", "garage_", "gar", "card"])
        | expected_discovery_topics(prefix, f"{base}2", chargers)
        | expected_discovery_topics(f"{prefix}2", base, chargers)
        | {f"{topic}/config" for topic in expected}
        | {topic.removesuffix("/config") for topic in expected}
        | {
            topic.replace(f"/{c}/", f"/{o}/", 1)
            for topic in expected
            for c in components
            for o in components
        }
        | {"", "homeassistant/status", f"{prefix}/sensor/{node_id(base)}/garage/config"}
    )
    assert not [topic for topic in others - expected if topic in told]
