"""goe2mqtt as a real Home Assistant sees it: entities, states, services, availability."""

from __future__ import annotations

import asyncio
import json
import re
from collections.abc import AsyncIterator, Callable
from pathlib import Path
from typing import Any

import aiomqtt
import pytest

from goe2mqtt import __version__
from goe2mqtt.catalogue import ENTITIES
from goe2mqtt.config.settings import parse_settings
from goe2mqtt.sim.broker import MosquittoBroker
from goe2mqtt.sim.simulator import Faults, Simulator

from ..conftest import RunningBridge, make_settings
from ..homeassistant import HomeAssistant, ensure_installed

pytestmark = pytest.mark.ha

HA_WAIT = 60.0  # HA may take its time on a busy machine: liveness, not speed
README = Path(__file__).resolve().parents[2] / "README.md"
# A stand-in for the user's meter: what the README's PV recipe reads as sensor.grid_power.
METER = """\
input_number:
  meter_grid_power:
    min: -20000
    max: 20000
    step: 1
    initial: 0
    mode: box
template:
  - sensor:
      - name: grid_power
        unit_of_measurement: W
        state: "{{ states('input_number.meter_grid_power') }}"
"""


def readme_pv_recipe() -> str:
    """The README's Home Assistant PV recipe, exactly as users copy it."""
    text = README.read_text()
    start = text.index("```yaml\n", text.index("<!-- recipe: home-assistant-pv -->")) + 8
    return text[start : text.index("```", start)]


@pytest.fixture
async def home_assistant(
    tmp_path: Path, own_broker: MosquittoBroker
) -> AsyncIterator[HomeAssistant]:
    hass = await asyncio.to_thread(ensure_installed)
    ha = HomeAssistant(tmp_path / "ha")
    try:
        await ha.start(hass, extra_config=METER + readme_pv_recipe())
        await ha.add_mqtt(own_broker.host, own_broker.port)
        yield ha
    finally:
        await ha.stop()


async def eventually(
    ha: HomeAssistant, check: Callable[[dict[str, dict[str, Any]]], bool], what: str
) -> dict[str, dict[str, Any]]:
    deadline = asyncio.get_running_loop().time() + HA_WAIT
    states: dict[str, dict[str, Any]] = {}
    while asyncio.get_running_loop().time() < deadline:
        states = await ha.states()
        if check(states):
            return states
        await asyncio.sleep(0.5)
    ours = {
        k: v["state"]
        for k, v in states.items()
        if k.split(".", 1)[1].startswith(("garage_", "site_"))
    }
    raise AssertionError(f"{what} did not happen; HA has {ours}\n{ha.log_tail()}")


# This Home Assistant (before 2025.10) makes a new entity's id from its name, and the
# ledger's card sensors are named after the simulator's cards (README says so).
NAMED_AFTER_CARDS = {
    "card_0_energy_this_month": "sensor.garage_alice_energy_this_month",
    "card_1_energy_this_month": "sensor.garage_bob_energy_this_month",
}


def entity_id(key: str) -> str:
    if key in NAMED_AFTER_CARDS:
        return NAMED_AFTER_CARDS[key]
    entity = next(e for e in ENTITIES if e.key == key)
    return f"{entity.component}.garage_{key}"


async def test_home_assistant_shows_and_drives_the_charger(
    home_assistant: HomeAssistant, own_broker: MosquittoBroker, simulator: Simulator
) -> None:
    ha = home_assistant
    raw = make_settings(own_broker, simulator, scan_interval=1.0)
    raw["mqtt"]["discovery_prefix"] = "homeassistant"  # what HA listens to
    raw["tariff"] = {"price_per_kwh": 0.30, "currency": "EUR"}  # the ledger's cost sensors
    settings = parse_settings(raw)
    garage = simulator.charger("012345")
    # The simulated car charges in real time: with its clock stopped, the energy HA
    # shows is the one asserted below however loaded the machine is.
    stopped = garage.clock()
    garage.clock = lambda: stopped
    garage.plug_in()
    running = RunningBridge(settings)
    await running.start()
    try:
        # Entities disabled by default exist in the registry but have no state.
        expected = {entity_id(e.key) for e in ENTITIES if e.enabled_by_default}
        # HA subscribes to each state topic as it takes in each config: wait for all
        # (a button has no state of its own).
        # Unknown until something is set or fed: no energy limit, no PV readings yet.
        # The ledger's last session: none has ended yet.
        unset = {"energy_limit", "grid_power", "pv_power", "battery_power",
                 "pv_feed_grid_power", "pv_feed_solar_power", "pv_feed_battery_power",
                 "last_session_energy", "last_session_cost", "last_session_duration",
                 "last_session_card"}  # fmt: skip
        stateful = {
            entity_id(e.key)
            for e in ENTITIES
            if e.enabled_by_default and e.value and e.key not in unset
        }
        states = await eventually(
            ha,
            lambda s: (
                expected <= s.keys()
                and s[entity_id("car_status")]["state"] == "charging"
                and all(s[k]["state"] not in ("unknown", "unavailable") for k in stateful)
            ),
            "every entity, with states",
        )
        # States, units and classes as HA understood them.
        assert states[entity_id("energy_total")]["state"] == "1234.57"
        energy = states[entity_id("energy_total")]["attributes"]
        assert energy["unit_of_measurement"] == "kWh"
        assert energy["device_class"] == "energy"
        assert energy["state_class"] == "total_increasing"
        # The ledger's sensors, with classes HA's energy dashboard and statistics take.
        for key in ("session_energy", "energy_this_month", "card_0_energy_this_month"):
            attributes = states[entity_id(key)]["attributes"]
            assert attributes["device_class"] == "energy", key
            assert attributes["state_class"] == "total_increasing", key
            assert attributes["unit_of_measurement"] == "kWh", key
        card = states[entity_id("card_0_energy_this_month")]["attributes"]
        assert card["friendly_name"] == "garage Alice energy this month"
        for key in ("session_cost", "cost_this_month"):
            attributes = states[entity_id(key)]["attributes"]
            assert attributes["device_class"] == "monetary", key
            assert attributes["state_class"] == "total", key
            assert attributes["unit_of_measurement"] == "EUR", key
        assert float(states[entity_id("session_energy")]["state"]) == 0  # opened at the plug
        assert states[entity_id("charging_allowed")]["state"] == "on"
        assert states[entity_id("charger_max_current")]["state"] == "16"
        assert states[entity_id("charger_max_current")]["attributes"]["unit_of_measurement"] == "A"
        assert states[entity_id("charging_current")]["state"] == "16"
        assert states[entity_id("phase_mode")]["state"] == "auto"
        assert states[entity_id("phase_mode")]["attributes"]["options"] == [
            "auto",
            "1_phase",
            "3_phases",
        ]
        assert states[entity_id("name")]["state"] == "go-e 012345"
        for key in expected:
            assert states[key]["state"] != "unavailable", key
        # One device for all of them, with what the charger told about itself.
        device = "device_id('sensor.garage_energy_total')"
        assert await ha.template(f"{{{{ device_attr({device}, 'manufacturer') }}}}") == "go-e"
        assert await ha.template(f"{{{{ device_attr({device}, 'model') }}}}") == "go-eCharger_V4"
        assert await ha.template(f"{{{{ device_attr({device}, 'sw_version') }}}}") == "60.4"
        listed = await ha.template(f"{{{{ device_entities({device}) | sort | join(' ') }}}}")
        assert set(listed.split()) == expected

        # The controls, through HA's own services.
        await ha.call("number", "set_value", entity_id=entity_id("charging_current"), value=10)
        await ha.call(
            "select", "select_option", entity_id=entity_id("phase_mode"), option="1_phase"
        )
        await eventually(
            ha,
            lambda s: (
                s[entity_id("charging_current")]["state"] == "10"
                and s[entity_id("phase_mode")]["state"] == "1_phase"
            ),
            "number and select taking effect",
        )
        assert (garage.amp, garage.psm) == (10, 1)
        # Issue 13's controls: a select, a switch, a text, the energy limit and the PV feed.
        await ha.call("select", "select_option", entity_id=entity_id("force_state"), option="on")
        await ha.call("switch", "turn_on", entity_id=entity_id("use_pv_surplus"))
        await ha.call("number", "set_value", entity_id=entity_id("energy_limit"), value=12.5)
        await ha.call("text", "set_value", entity_id=entity_id("next_trip_time"), value="07:30")
        # The PV feed through the README's automation: the meter changes, HA sets our
        # PV feed number, the bridge writes ids, the charger shows it.
        await ha.call(
            "input_number", "set_value", entity_id="input_number.meter_grid_power", value=-1500
        )
        states = await eventually(
            ha,
            lambda s: (
                s[entity_id("force_state")]["state"] == "on"
                and s[entity_id("use_pv_surplus")]["state"] == "on"
                and s[entity_id("energy_limit")]["state"] == "12.5"
                and s[entity_id("energy_limit_active")]["state"] == "on"
                and s[entity_id("next_trip_time")]["state"] == "07:30"
                and s[entity_id("grid_power")]["state"] == "-1500"
                and s[entity_id("pv_feed")]["state"] == "confirmed"
            ),
            "select, switch, energy limit, text and PV feed taking effect",
        )
        assert garage.frc == 2
        assert garage.settings["fup"] is True
        assert garage.settings["dwo"] == 12500
        assert garage.settings["att"] == 27000
        assert garage.ids == {"pGrid": -1500.0}
        assert states[entity_id("energy_limit")]["attributes"]["unit_of_measurement"] == "kWh"
        await ha.call("switch", "turn_off", entity_id=entity_id("energy_limit_active"))
        await eventually(
            ha,
            lambda s: (
                s[entity_id("energy_limit_active")]["state"] == "off"
                and s[entity_id("energy_limit")]["state"] == "unknown"
            ),
            "the energy limit switched off (null, not 0)",
        )
        assert garage.settings["dwo"] is None

        await ha.call("button", "press", entity_id=entity_id("wallbox_control"))  # charging: stop
        await eventually(
            ha, lambda s: s[entity_id("car_status")]["state"] == "complete", "button stopping"
        )
        assert garage.frc == 1

        # No car: the settings still take a value ("10 A before I plug in"), only the
        # button waits for a car. HA refuses service calls to unavailable entities.
        garage.unplug()
        states = await eventually(
            ha,
            lambda s: (
                s[entity_id("wallbox_control")]["state"] == "unavailable"
                and s[entity_id("car_connected")]["state"] == "off"
            ),
            "the button waiting for a car",
        )
        assert states[entity_id("charging_current")]["state"] != "unavailable"
        await ha.call("number", "set_value", entity_id=entity_id("charging_current"), value=8)
        await eventually(
            ha, lambda s: s[entity_id("charging_current")]["state"] == "8", "8 A without a car"
        )
        assert garage.amp == 8
        garage.plug_in()

        # Offline charger: HA shows every entity unavailable.
        garage.faults = Faults(http_status=403)
        await eventually(
            ha,
            lambda s: all(s[k]["state"] == "unavailable" for k in expected),
            "entities going unavailable",
        )
        garage.faults = Faults()
        await eventually(
            ha, lambda s: s[entity_id("energy_total")]["state"] != "unavailable", "coming back"
        )

        # Values the charger does not send: null on the topics, unknown in HA.
        unknown = {"energy_total": "eto", "charging_allowed": "alw", "phase_mode": "psm",
                   "charging_current": "amp"}  # fmt: skip
        garage.faults = Faults(missing=list(unknown.values()))
        await eventually(
            ha,
            lambda s: all(s[entity_id(k)]["state"] == "unknown" for k in unknown),
            "sensor, binary sensor, select and number unknown",
        )
        garage.faults = Faults()

        # The bridge is a device too: its health where users look.
        bridge = "device_id('sensor.goe2mqtt_version')"
        assert await ha.template(f"{{{{ device_attr({bridge}, 'manufacturer') }}}}") == ("goe2mqtt")
        health = await eventually(
            ha,
            lambda s: s.get("sensor.goe2mqtt_commands_done", {}).get("state") == "9",
            "the bridge's command count",
        )
        assert health["sensor.goe2mqtt_version"]["state"] == __version__
        assert health["sensor.goe2mqtt_chargers_online"]["state"] == "1"
        assert health["sensor.goe2mqtt_commands_failed"]["state"] == "0"
        assert health["sensor.goe2mqtt_last_error"]["state"].startswith("poll failed: ")
        assert health["sensor.goe2mqtt_uptime"]["attributes"]["device_class"] == "duration"
        assert health["sensor.goe2mqtt_command_journal"]["state"] == "ok"
    finally:
        await running.stop()

    # HA found nothing to complain about in what we published.
    complaints = [
        line
        for line in ha.log_text().splitlines()
        if re.search(r"\b(WARNING|ERROR)\b", line) and re.search(r"mqtt|discovery", line, re.I)
    ]
    assert complaints == []


async def test_home_assistant_drives_a_charger_on_its_websocket(
    home_assistant: HomeAssistant, own_broker: MosquittoBroker, simulator: Simulator
) -> None:
    ha = home_assistant
    carport = simulator.charger("067890")
    carport.password, carport.hash_kind = "carport-pw", "bcrypt"
    raw = make_settings(own_broker, simulator, scan_interval=1.0)
    raw["mqtt"]["discovery_prefix"] = "homeassistant"
    raw["chargers"] = [{"name": "carport", "host": simulator.local_hosts["067890"],
                        "password": "carport-pw", "scan_interval": 1.0}]  # fmt: skip
    running = RunningBridge(parse_settings(raw))
    await running.start()
    try:
        polls = carport.status_calls
        states = await eventually(
            ha,
            lambda s: (
                s.get("sensor.carport_connection", {}).get("state") == "websocket"
                and s.get("number.carport_charging_current", {}).get("state") == "16"
            ),
            "the websocket charger in Home Assistant",
        )
        assert states["sensor.carport_name"]["state"] == "go-e 067890"
        carport.plug_in()
        await eventually(
            ha, lambda s: s["sensor.carport_car_status"]["state"] == "charging", "a pushed plug"
        )
        await ha.call("number", "set_value", entity_id="number.carport_charging_current", value=9)
        await eventually(
            ha, lambda s: s["number.carport_charging_current"]["state"] == "9", "a secured write"
        )
        assert carport.amp == 9
        assert carport.status_calls == polls  # nothing went over HTTP
    finally:
        await running.stop()


def number(states: dict[str, dict[str, Any]], entity: str) -> float | None:
    try:
        return float(states[entity]["state"])
    except (KeyError, ValueError):
        return None


async def test_home_assistant_shows_and_drives_a_site(
    home_assistant: HomeAssistant, own_broker: MosquittoBroker, simulator: Simulator
) -> None:
    """The site controller as a device of its own (issue 31): its readings, and its mode
    and fuse set from Home Assistant reach the controller."""
    ha = home_assistant
    raw = make_settings(own_broker, simulator, chargers=("garage", "carport"), scan_interval=1.0)
    raw["mqtt"]["discovery_prefix"] = "homeassistant"
    meter = "home/meter"
    raw["sites"] = [{"name": "house", "fuse": 25, "meter_topic": meter, "interval": 1,
                     "chargers": [{"name": "garage", "priority": 1, "max_current": 16},
                                  {"name": "carport", "priority": 2}]}]  # fmt: skip
    for serial in ("012345", "067890"):
        simulator.charger(serial).plug_in()
    running = RunningBridge(parse_settings(raw))
    await running.start()
    stop_meter = asyncio.Event()

    async def house_meter() -> None:  # 4 A of house per phase, the chargers' on top
        async with aiomqtt.Client(own_broker.host, own_broker.port) as client:
            while not stop_meter.is_set():
                drawn = [sum(simulator.charger(s).currents()[p] for s in ("012345", "067890"))
                         for p in range(3)]  # fmt: skip
                reading = {f"l{p + 1}": round(4.0 + drawn[p], 2) for p in range(3)}
                await client.publish(meter, json.dumps(reading))
                await asyncio.sleep(0.5)

    feeding = asyncio.create_task(house_meter())
    try:
        states = await eventually(
            ha,
            lambda s: (
                s.get("select.site_house_mode", {}).get("state") == "fuse"
                and number(s, "number.site_house_fuse") == 25
                and s.get("binary_sensor.site_house_fallback", {}).get("state") == "off"
                # The house's 4 A and the fuse's margin leave the garage more than its
                # minimum and less than its 16 A; the carport, second, its minimum.
                and 6 < (number(s, "sensor.site_house_allocated_garage") or 0) < 16
                and number(s, "sensor.site_house_allocated_carport") == 6
            ),
            "the site in Home Assistant",
        )
        available = states["sensor.site_house_available_current_l1"]
        assert available["attributes"]["unit_of_measurement"] == "A"
        assert 0 < float(available["state"]) <= 25
        device = await ha.template("{{ device_attr(device_id('select.site_house_mode'), 'name') }}")
        assert device == "Site house"

        await ha.call("select", "select_option", entity_id="select.site_house_mode", option="off")
        await eventually(ha, lambda s: s["select.site_house_mode"]["state"] == "off", "mode off")
        await ha.call("number", "set_value", entity_id="number.site_house_fuse", value=20)
        await eventually(ha, lambda s: number(s, "number.site_house_fuse") == 20, "a fuse of 20")
        site = running.bridge.sites.runners["house"]
        assert site.controller.fuse == 20
    finally:
        stop_meter.set()
        await feeding
        await running.stop()
