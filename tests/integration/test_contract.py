"""The contract every transport keeps: one suite over cloud poll, local poll, local
websocket, cloud websocket and the charger's own MQTT, through the bridge and a real
Mosquitto (issue 28, item 2). What may differ is DIFFERENCES, the README's table
(test_the_readme_shows_this_table); every other assertion is the same for all five."""

from __future__ import annotations

import json
import re
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

import goe2mqtt.charger.push_side
import goe2mqtt.goe.charger_mqtt
from goe2mqtt.sim.broker import MosquittoBroker
from tests.conftest import MqttProbe
from tests.integration.contract_rig import (
    CHARGER,
    CLOUD_POLL,
    CLOUD_WEBSOCKET,
    LOCAL_POLL,
    LOCAL_WEBSOCKET,
    OWN_MQTT,
    SERIAL,
    TEST_SILENCE,
    TRANSPORTS,
    Rig,
    rig_for,
    until,
)
from tests.integration.test_values import FIRMWARE, MAX_STATE_LENGTH, NAME, clean

TEST_PUSH_WAIT = 0.5
README = Path(__file__).parents[2] / "README.md"
POLL = "polled: at the next poll"
PUSHED = "pushed: as it changes"
READ_BACK = "the charger read back over HTTP"
ASKED = "no push follows: asked over HTTP after 2 s"
LAST_HEARD = "the next message heard, or after 2 s the value last heard"
PUSHED_AFTER = "the value the charger pushes after it"
WHOLE = "the whole status"
CUT = "cut like any text, to 255 characters"
DROPPED = "dropped and counted in skipped; the value before stays"

# transport -> behaviour -> what it does. The README shows exactly this table.
DIFFERENCES: dict[str, dict[str, str]] = {
    "Connection says": {
        CLOUD_POLL: "polling", LOCAL_POLL: "polling", LOCAL_WEBSOCKET: "websocket",
        CLOUD_WEBSOCKET: "cloud websocket", OWN_MQTT: "mqtt",
    },
    "a change arrives": {
        CLOUD_POLL: POLL, LOCAL_POLL: POLL, LOCAL_WEBSOCKET: PUSHED,
        CLOUD_WEBSOCKET: PUSHED, OWN_MQTT: PUSHED,
    },
    "a write is confirmed by": {
        CLOUD_POLL: READ_BACK, LOCAL_POLL: READ_BACK, LOCAL_WEBSOCKET: PUSHED_AFTER,
        CLOUD_WEBSOCKET: PUSHED_AFTER, OWN_MQTT: PUSHED_AFTER,
    },
    "a write of the value it already has": {
        CLOUD_POLL: READ_BACK, LOCAL_POLL: READ_BACK, LOCAL_WEBSOCKET: ASKED,
        CLOUD_WEBSOCKET: ASKED, OWN_MQTT: LAST_HEARD,
    },
    "while its push connection is down": {
        CLOUD_POLL: "-", LOCAL_POLL: "-",
        LOCAL_WEBSOCKET: "polled over the local HTTP API",
        CLOUD_WEBSOCKET: "polled over the cloud API",
        OWN_MQTT: "offline after 120 s unheard",
    },
    "the first status": {
        CLOUD_POLL: WHOLE, LOCAL_POLL: WHOLE, LOCAL_WEBSOCKET: WHOLE, CLOUD_WEBSOCKET: WHOLE,
        OWN_MQTT: "what changed since the charger last published every key: the entities"
        " every API v2 firmware has are announced (unknown) until the rest is heard",
    },
    "a value over 16 KiB": {
        CLOUD_POLL: CUT, LOCAL_POLL: CUT, LOCAL_WEBSOCKET: DROPPED,
        CLOUD_WEBSOCKET: DROPPED, OWN_MQTT: DROPPED,
    },
}  # fmt: skip

# Every command, and the result it gets (the same for every transport): service, what
# it sends, the go-e calls it makes.
COMMANDS: list[tuple[str, str, list[dict[str, object]]]] = [
    ("start_charging", '{"charging_power": 10}', [{"amp": 10}, {"frc": 2}]),
    ("change_charging_power", "12", [{"amp": 12}]),
    ("set_phase", '"1_phase"', [{"psm": 1}]),
    ("set_transaction", '{"status": 0}', [{"trx": 0}]),
    ("wallbox_control", "PRESS", [{"frc": 1}]),  # charging: stop
    ("set", '{"frc": 0, "lbr": 120}', [{"frc": 0, "lbr": 120}]),
    ("stop_charging", "{}", [{"frc": 1}]),
    # an entity's own command, one of each kind: select, switch, text, number
    ("logic_mode", "eco", [{"lmo": 4}]),
    ("allow_charge_pause", "false", [{"acp": False}]),
    ("next_trip_time", "07:30", [{"att": 27000}]),
    ("energy_limit", "12.5", [{"dwo": 12500}]),
]
GOE_AFTER = {"amp": 12, "psm": 1, "trx": 0, "frc": 1, "lbr": 120, "lmo": 4, "acp": False,
             "att": 27000, "dwo": 12500}  # fmt: skip


def says(behaviour: str, transport: str) -> str:
    return DIFFERENCES[behaviour][transport]


@pytest.fixture(params=TRANSPORTS)
async def fresh(
    request: pytest.FixtureRequest, broker: MosquittoBroker, monkeypatch: pytest.MonkeyPatch
) -> AsyncIterator[Rig]:
    """The charger on one transport, the bridge not started yet."""
    monkeypatch.setattr(goe2mqtt.goe.charger_mqtt, "SILENCE", TEST_SILENCE)
    # A pushing charger's read-back: no push within this long, ask (2 s in production).
    monkeypatch.setattr(goe2mqtt.charger.push_side, "PUSH_WAIT", TEST_PUSH_WAIT)
    async with rig_for(request.param, broker) as rig:
        yield rig
        # Never, in any test: a zero-length message (a deletion for Home Assistant,
        # an empty msg.payload for Node-RED) where nothing was taken away.
        assert rig.empty_payloads() == []


@pytest.fixture
async def rig(fresh: Rig) -> Rig:
    """The charger on one transport, the bridge serving it from a first start."""
    await fresh.start_charger()
    await fresh.start_bridge()
    return fresh


async def test_first_start_announces_at_least_the_baseline_and_never_an_empty_payload(
    fresh: Rig,
) -> None:
    """Issue 28, item 3: on its own MQTT the bridge first heard only what changed (on a
    real charger its uptime) and announced 3 entities, clearing 111 leaf and 111
    discovery topics with zero-length messages until the next full publish."""
    rig = fresh
    rig.charger.plug_in()  # a car charging: its energy changes all the time
    await rig.start_charger(mid_stream=True)
    await rig.start_bridge()
    await rig.probe.wait_text(rig.availability, "online")
    online = rig.probe.mark()
    connection = await rig.probe.wait_for(rig.state("connection"))
    assert connection.text == says("Connection says", rig.transport)
    first = rig.configs_seen(until_mark=online)
    assert rig.expected_configs(baseline=True) <= first, "the first announcement"
    if says("the first status", rig.transport) == WHOLE:
        assert first == rig.expected_configs()
        assert rig.probe.last_text(rig.state("firmware")) == rig.charger.firmware
    else:  # part of it: what is not heard yet is unknown, and says so with null
        assert first < rig.expected_configs()
        assert rig.probe.last_text(rig.state("firmware")) == "null"
    await rig.whole_picture()
    assert rig.configs_seen() == rig.expected_configs()
    assert rig.empty_payloads() == []


async def test_discovery_is_the_same_for_every_transport(rig: Rig) -> None:
    await rig.whole_picture()
    fresh = MqttProbe(rig.broker.host, rig.broker.port, [f"{rig.prefix}/#"])
    expected = rig.expected_configs()
    async with fresh:
        await until(lambda: {m.topic for m in fresh.messages} >= expected, "every config")
        configs = {m.topic: m.json() for m in fresh.messages if rig.is_config(m.topic)}
    assert set(configs) == expected
    devices = {json.dumps(c["device"], sort_keys=True) for c in configs.values()}
    assert len(devices) == 1
    device = json.loads(devices.pop())
    assert (device["sw_version"], device["serial_number"]) == (rig.charger.firmware, SERIAL)
    for config in configs.values():
        assert rig.availability in {a["topic"] for a in config["availability"]}


async def test_a_change_reaches_mqtt(rig: Rig) -> None:
    await rig.whole_picture()
    polls = rig.charger.status_calls
    rig.charger.plug_in()
    await rig.probe.wait_text(rig.state("car_status"), "charging")
    await rig.probe.wait_for(rig.topics.json_state(CHARGER),
                             lambda m: m.json()["car_status"] == "charging")  # fmt: skip
    if says("a change arrives", rig.transport) == PUSHED:
        assert rig.charger.status_calls == polls  # no HTTP request at all
    else:
        assert rig.charger.status_calls > polls


async def test_every_command_and_set_with_one_result_shape_and_confirmation(rig: Rig) -> None:
    await rig.whole_picture()
    rig.charger.plug_in()
    await rig.probe.wait_text(rig.state("car_status"), "charging")
    polls, sets = rig.charger.status_calls, rig.charger.set_requests
    for service, payload, calls in COMMANDS:
        result = await rig.probe.command(rig.cmd(service), payload)
        assert result == {"service": service, "ok": True, "applied": calls}, result
    status = rig.charger.status()
    assert {key: status[key] for key in GOE_AFTER} == GOE_AFTER
    assert rig.charger.set_requests > sets
    await rig.probe.wait_text(rig.state("charging_current"), "12")
    if says("a write is confirmed by", rig.transport) == PUSHED_AFTER:
        assert rig.charger.status_calls == polls
    else:
        assert rig.charger.status_calls >= polls + len(COMMANDS)

    await rig.probe.publish(rig.cmd("pv_grid"), "-900")
    await until(lambda: rig.charger.ids is not None, "ids written")
    assert rig.charger.ids == {"pGrid": -900.0}
    await rig.probe.wait_text(rig.state("pv_feed"), "confirmed")


async def test_a_write_of_the_value_it_already_has(rig: Rig) -> None:
    await rig.whole_picture()
    polls = rig.charger.status_calls
    result = await rig.probe.command(rig.cmd("change_charging_power"), "16")
    assert result == {"service": "change_charging_power", "ok": True, "applied": [{"amp": 16}]}
    http = rig.charger.status_calls - polls
    how = says("a write of the value it already has", rig.transport)
    assert (http > 0) == (how in (READ_BACK, ASKED)), (how, http)


async def test_a_write_acknowledged_but_not_applied_is_not_confirmed(rig: Rig) -> None:
    await rig.whole_picture()
    rig.charger.faults.drop_sets = True  # the charger says yes and forgets it
    result = await rig.probe.command(rig.cmd("change_charging_power"), "9")
    assert (result["ok"], result["error"]) == (False, "not confirmed"), result
    assert result["unconfirmed"] == {"amp": {"expected": 9, "actual": 16}}
    assert rig.charger.dropped_sets != []
    assert rig.probe.last_text(rig.state("charging_current")) == "16"


async def test_offline_and_back(rig: Rig) -> None:
    await rig.whole_picture()
    connection = rig.state("connection")
    if says("while its push connection is down", rig.transport).startswith("polled"):
        rig.charger.faults.ws = "refuse"
        mark = rig.probe.mark()
        await rig.sim.close_sockets()
        await rig.probe.wait_for(connection, lambda m: m.text.startswith("polling"), since=mark)
        rig.charger.plug_in()
        await rig.probe.wait_text(rig.state("car_status"), "charging")  # by polling
        assert rig.probe.last_text(rig.availability) == "online"
    mark = rig.probe.mark()
    await rig.unreachable()
    await rig.probe.wait_text(rig.availability, "offline", since=mark)
    mark = rig.probe.mark()
    rig.reachable()
    rig.charger.plug_in()
    await rig.probe.wait_text(rig.availability, "online", since=mark)
    await rig.probe.wait_text(rig.state("car_status"), "charging")
    await rig.probe.wait_text(connection, says("Connection says", rig.transport))
    result = await rig.probe.command(rig.cmd("change_charging_power"), "11")
    assert result["ok"] is True, result


async def test_hostile_values_in_the_status(fresh: Rig) -> None:
    """What a charger says that cannot be right is unknown (null) or cleaned, the same
    on every transport; the bridge serves on, and sane values show again."""
    rig = fresh
    nrg = rig.charger.status()["nrg"]
    nrg[11] = 1e308  # a charging power no charger delivers
    rig.charger.faults.values.update({"nrg": nrg, "fna": NAME[:1000], "fwv": FIRMWARE,
                                      "amp": "sixteen", "car": [1]})  # fmt: skip
    await rig.start_charger()
    await rig.start_bridge()
    await rig.probe.wait_text(rig.availability, "online")
    await rig.probe.wait_text(rig.state("firmware"), "60.1-evil")
    named = ("Garage[2JegaraG" + "x" * 990)[:MAX_STATE_LENGTH]
    await rig.probe.wait_text(rig.state("name"), named)
    for entity in ("charging_power", "charging_current", "car_status"):
        await rig.probe.wait_text(rig.state(entity), "null")
    for message in rig.probe.messages:
        assert clean(message.payload.decode()), message.topic

    rig.charger.faults.values = {"fna": "Z" * 20_000}
    await rig.probe.wait_text(rig.state("charging_current"), "16")
    await rig.probe.wait_text(rig.state("car_status"), "idle")
    if rig.running is not None and not rig.pushes:
        rig.running.bridge.chargers[CHARGER].poll_soon()  # names: every config_interval
    if says("a value over 16 KiB", rig.transport) == CUT:
        await rig.probe.wait_text(rig.state("name"), "Z" * MAX_STATE_LENGTH)
    else:  # dropped where it arrives; the name before stays
        await until(lambda: rig.skipped() > 0, "the value dropped")
        assert rig.probe.last_text(rig.state("name")) == named
    result = await rig.probe.command(rig.cmd("change_charging_power"), "10")
    assert result["ok"] is True, result


async def test_a_restart_announces_the_remembered_charger(rig: Rig, tmp_path: Path) -> None:
    """Stopped and started again while the charger is unreachable, the bridge announces
    what it learnt (model, firmware, every entity), not the bare baseline."""
    await rig.whole_picture()
    assert rig.running is not None
    await rig.running.stop()
    rig.raw["state_dir"] = str(tmp_path)
    remembered = tmp_path / f"{rig.raw['mqtt']['client_id']}.chargers.json"
    await rig.start_bridge()
    await until(
        lambda: remembered.exists() and rig.charger.firmware in remembered.read_text(),
        "the facts remembered",
    )
    await rig.running.stop()
    await rig.unreachable()
    mark = rig.probe.mark()
    await rig.start_bridge()
    expected = rig.expected_configs()
    await until(lambda: rig.configs_seen(mark) >= expected, "the remembered entities")
    configs = [m.json() for m in rig.probe.since(mark) if m.topic in expected]
    assert {c["device"]["sw_version"] for c in configs} == {rig.charger.firmware}
    assert rig.probe.last_text(rig.availability) == "offline"
    rig.reachable()
    await rig.probe.wait_text(rig.availability, "online", since=mark)


def test_the_readme_shows_this_table() -> None:
    """The README's table of what differs is DIFFERENCES, row for row."""
    text = README.read_text()
    start = text.index("<!-- transports:start -->")
    end = text.index("<!-- transports:end -->")
    rows = [line for line in text[start:end].splitlines() if line.startswith("|")]
    header = [cell.strip() for cell in rows[0].strip("|").split("|")]
    assert header == ["", *TRANSPORTS]
    table = {}
    for row in rows[2:]:
        cells = [re.sub(r"`", "", cell.strip()) for cell in row.strip("|").split("|")]
        table[cells[0]] = dict(zip(TRANSPORTS, cells[1:], strict=True))
    assert table == DIFFERENCES
