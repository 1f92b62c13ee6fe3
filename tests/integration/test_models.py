"""Model- and firmware-aware: a charger gets the entities whose keys it reports.

Through the simulator over HTTP and one Charger (no broker: the publisher
records what would be retained).
"""

from __future__ import annotations

import json

import pytest

from goe2mqtt.catalogue import ENTITIES
from goe2mqtt.charger.loop import Charger
from goe2mqtt.mqtt.topics import Topics
from goe2mqtt.sim.simulator import MODELS, Faults, SimulatedCharger
from tests.conftest import RecordingPublisher

PREFIX = "homeassistant/"
Setup = tuple[Charger, SimulatedCharger, RecordingPublisher]


def announced(publisher: RecordingPublisher) -> dict[str, dict[str, object]]:
    """entity key -> its discovery config, for every config retained (not cleared)."""
    configs = {}
    for topic, payload in publisher.retained.items():
        if topic.startswith(PREFIX) and payload:
            config = json.loads(payload)
            configs[config["unique_id"].split("_", 2)[2]] = config
    return configs


def cleared(publisher: RecordingPublisher) -> set[str]:
    return {
        topic.split("/")[3].removeprefix("garage_")
        for topic, payload in publisher.retained.items()
        if topic.startswith(PREFIX) and not payload
    }


async def switch_model(setup: Setup, model: str) -> None:
    bridge, simulated, _ = setup
    simulated.model_name = model
    simulated.reboots += 1  # new firmware or hardware comes with a restart
    assert await bridge.refresh()


async def test_the_newest_firmware_gets_every_entity(polled_charger: Setup) -> None:
    _, _, publisher = polled_charger
    assert set(announced(publisher)) == {entity.key for entity in ENTITIES}
    assert not cleared(publisher)


async def test_a_model_without_upo_gets_no_switch_for_it_and_old_firmware_no_pv_feed(
    polled_charger: Setup,
) -> None:
    bridge, _, publisher = polled_charger
    await switch_model(polled_charger, "gemini22")
    configs = announced(publisher)
    assert "unlock_on_power_outage" not in configs
    assert {"pv_feed", "pv_feed_grid_power", "use_pv_surplus"} <= set(configs)
    assert cleared(publisher) == {"unlock_on_power_outage"}
    # ... and its retained state is gone too, so nobody reads it as current.
    assert publisher.retained["goe2mqtt/garage/unlock_on_power_outage"] == b""

    await switch_model(polled_charger, "legacy")
    configs = announced(publisher)
    missing = {
        "pv_feed", "pv_feed_grid_power", "pv_feed_solar_power", "pv_feed_battery_power",
        "grid_power", "pv_power", "battery_power", "use_pv_surplus", "grid_target",
        "temporary_current_limit", "cable_unlock_status", "unlock_on_power_outage",
    }  # fmt: skip
    assert not missing & set(configs)
    assert missing <= cleared(publisher)
    # Old firmware keeps the cards in one array: the same entities read them.
    assert {"card_0_name", "card_0_energy", "transaction", "logic_mode"} <= set(configs)
    states = json.loads(publisher.retained["goe2mqtt/garage/state"])
    assert states["card_0_name"] == "Alice"
    assert states["card_0_energy"] == 52.3
    assert "pv_feed" not in states
    assert configs["transaction"]["options"][:4] == ["no_transaction", "no_card", "Alice", "Bob"]
    assert bridge.status["fwv"] == MODELS["legacy"].firmware

    await switch_model(polled_charger, "home22")  # a firmware update brings them back
    assert set(announced(publisher)) == {entity.key for entity in ENTITIES}


async def test_first_contact_clears_what_an_earlier_run_announced_for_missing_keys(
    polled_charger: Setup,
) -> None:
    bridge, simulated, _ = polled_charger
    fresh = RecordingPublisher()
    simulated.model_name = "gemini22"
    later = Charger(
        bridge.settings,
        bridge.transport,
        fresh,
        topics=Topics("goe2mqtt"),  # as polled_charger
        discovery_prefix="homeassistant",
    )
    assert await later.refresh()
    assert "unlock_on_power_outage" in cleared(fresh)
    assert "unlock_on_power_outage" not in announced(fresh)


async def test_discovery_follows_the_current_ceiling_and_card_names(
    polled_charger: Setup,
) -> None:
    bridge, simulated, publisher = polled_charger
    number = announced(publisher)["charging_current"]
    assert (number["min"], number["max"]) == (6, 32)
    simulated.model_name = "home11"
    simulated.ama = 16
    simulated.reboots += 1
    assert await bridge.refresh()
    assert announced(publisher)["charging_current"]["max"] == 16
    assert announced(publisher)["max_current"]["max"] == 16

    before = dict(publisher.retained)
    simulated.card_names[2] = "Carol"
    bridge.poll_soon(60.0)  # names are settings: read every config_interval, here now
    assert await bridge.refresh()
    changed = {t for t, p in publisher.retained.items() if before.get(t) != p}
    transaction = announced(publisher)["transaction"]
    assert "Carol" in transaction["options"]
    # The ledger's sensor for the slot is named after the card, its id the slot's.
    month = announced(publisher)["card_2_energy_this_month"]
    assert month["name"] == "Carol energy this month"
    assert month["default_entity_id"] == "sensor.garage_card_2_energy_this_month"
    # Only the configs that show card names change, not the hundred others.
    assert {t for t in changed if t.startswith(PREFIX)} == {
        "homeassistant/select/goe2mqtt/garage_transaction/config",
        "homeassistant/sensor/goe2mqtt/garage_card_2_energy_this_month/config",
    }


async def test_a_quiet_charger_renders_no_discovery(
    polled_charger: Setup, monkeypatch: pytest.MonkeyPatch
) -> None:
    bridge, _, _ = polled_charger
    rendered = []
    import goe2mqtt.charger.publish as charger_module

    original = charger_module.DiscoveryConfigs
    monkeypatch.setattr(
        charger_module, "DiscoveryConfigs", lambda **kw: rendered.append(1) or original(**kw)
    )
    for _ in range(3):
        assert await bridge.refresh()
    assert rendered == []


async def test_a_key_missing_from_one_answer_keeps_its_entity(polled_charger: Setup) -> None:
    # Without a firmware change a missing key is a partial answer, not a new model:
    # its entity stays (unknown), so a garbled status never makes entities flap.
    bridge, simulated, publisher = polled_charger
    simulated.faults = Faults(missing=["upo", "dwo"])
    bridge.poll_soon(60.0)  # settings: read every config_interval, here now
    assert await bridge.refresh()
    assert {"unlock_on_power_outage", "energy_limit"} <= set(announced(publisher))
    assert not cleared(publisher)
    assert publisher.retained["goe2mqtt/garage/unlock_on_power_outage"] == b"null"
