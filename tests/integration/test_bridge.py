"""The bridge end to end: simulator <-> goe2mqtt <-> real Mosquitto, observed through MQTT."""

from __future__ import annotations

import json
import socket
from typing import Any

import pytest
import structlog

from goe2mqtt.catalogue import ENTITIES, STATUS_KEYS, format_state, read_states
from goe2mqtt.commands.outcomes import unconfirmed_values
from goe2mqtt.homeassistant.discovery import ORIGIN, discovery_topic
from goe2mqtt.sim.simulator import Faults

from ..conftest import MqttProbe, RunningBridge, Setup, until

SLOW_POLLS = {"scan_interval": 60}  # the test decides when polls happen (poll_soon)


@pytest.fixture(params=["cloud", "local"])
def transport(request: pytest.FixtureRequest) -> str:
    """Every case here runs through the cloud API and through the local HTTP API."""
    return str(request.param)


def expected_states(setup: Setup, name: str) -> dict[str, str]:
    states, problems = read_states(setup.charger(name).status(STATUS_KEYS))
    assert problems == {}
    return {key: format_state(value) for key, value in states.items()}


async def test_fresh_subscriber_finds_every_state_config_and_availability_retained(
    setup: Setup, bridge: RunningBridge, broker: Any
) -> None:
    topics = setup.topics
    async with MqttProbe(
        broker.host, broker.port, [f"{topics.base}/#", f"{setup.prefix}/#"]
    ) as late:
        for name in ("garage", "carport"):
            for key, text in expected_states(setup, name).items():
                message = await late.wait_for(setup.state(name, key))
                assert message.retain, key
                assert message.text == text, key
            state = (await late.wait_for(topics.json_state(name))).json()
            assert state["car_status"] == "idle"
            assert state["energy_total"] == 1234.57
            assert (await late.wait_for(topics.availability(name))).text == "online"
            for entity in ENTITIES:
                topic = discovery_topic(setup.prefix, topics.base, name, entity)
                config = (await late.wait_for(topic)).json()
                assert config["unique_id"] == f"goe_{setup.charger(name).serial}_{entity.key}"
                assert config["device"]["sw_version"] == "60.4"
        assert (await late.wait_for(topics.bridge_availability)).text == "online"
        number = discovery_topic(setup.prefix, topics.base, "garage", _entity("charging_current"))
        assert (late.latest(number) or pytest.fail("no number")).json()["max"] == 32


def _entity(key: str) -> Any:
    return next(e for e in ENTITIES if e.key == key)


async def test_values_follow_the_charger_and_quiet_polls_publish_nothing(
    setup: Setup, probe: MqttProbe, bridge: RunningBridge
) -> None:
    garage = setup.charger("garage")
    garage.plug_in()
    await probe.wait_text(setup.state("garage", "car_status"), "charging")
    await probe.wait_text(setup.state("garage", "charging_power"), "11057.6")
    await probe.wait_text(setup.state("garage", "car_connected"), "true")

    # An idle charger whose values do not change costs the broker nothing.
    carport = setup.charger("carport")
    mark, calls = probe.mark(), carport.status_calls
    await until(lambda: carport.status_calls >= calls + 3, "three more polls")
    assert [m.topic for m in probe.since(mark) if "/carport/" in m.topic] == []


@pytest.mark.parametrize(
    ("service", "payload", "set_calls", "state_key", "state"),
    [
        (
            "start_charging",
            {"charging_power": 10},
            [{"amp": 10}, {"frc": 2}],
            "charging_current",
            "10",
        ),
        ("start_charging", {}, [{"frc": 2}], "force_state", "on"),
        ("stop_charging", {}, [{"frc": 1}], "car_status", "complete"),
        (
            "change_charging_power",
            {"charging_power": 12},
            [{"amp": 12}],
            "charger_max_current",
            "12",
        ),
        ("change_charging_power", 8, [{"amp": 8}], "charging_current", "8"),
        ("set_phase", {"phase": 1}, [{"psm": 1}], "phase_switch_mode", "1_phase"),
        ("set_phase", 2, [{"psm": 2}], "phase_mode", "3_phases"),
        ("set_phase", 0, [{"psm": 0}], "phase_mode", "auto"),
        ("set_transaction", {"status": 0}, [{"trx": 0}], "transaction", "no_card"),
        ("set_transaction", None, [{"trx": None}], "transaction", "no_transaction"),
    ],
)
async def test_commands_change_the_charger_and_show_at_once(
    setup: Setup,
    probe: MqttProbe,
    bridge: RunningBridge,
    service: str,
    payload: Any,
    set_calls: list[dict[str, Any]],
    state_key: str,
    state: str,
) -> None:
    garage = setup.charger("garage")
    garage.plug_in()
    if service == "set_transaction" and payload is None:
        garage.trx = 0
    if service == "set_phase" and payload == 0:
        garage.psm = 2  # start elsewhere: publishing is change-only
    await probe.wait_text(setup.state("garage", "car_status"), "charging")
    body = {**payload, "id": "req-1"} if isinstance(payload, dict) else payload
    mark = probe.mark()
    result = await probe.command(setup.cmd("garage", service), json.dumps(body))
    assert result["ok"] is True, result
    assert result["service"] == service
    assert result.get("id") == ("req-1" if isinstance(payload, dict) else None)
    assert garage.set_calls == set_calls
    # The bridge read the status right after the set: no waiting for the next poll.
    await probe.wait_text(setup.state("garage", state_key), state, since=mark)


async def test_the_broker_connection_sends_each_packet_at_once(
    setup: Setup, probe: MqttProbe, bridge: RunningBridge
) -> None:
    # paho leaves Nagle's algorithm on: a PUBACK or result written while the previous
    # packet awaits the broker's delayed ACK would wait for it (~40 ms).
    await probe.wait_text(setup.topics.availability("garage"), "online")
    client = bridge.bridge.mqtt._client
    assert client is not None
    sock = client._client.socket()
    assert isinstance(sock, socket.socket)
    assert sock.getsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY) != 0
    # And a command still goes the whole way over it.
    result = await probe.command(setup.cmd("garage", "change_charging_power"), "12")
    assert result["ok"] is True, result


async def test_number_select_and_button_command_through_their_discovery_topics(
    setup: Setup, probe: MqttProbe, bridge: RunningBridge
) -> None:
    garage = setup.charger("garage")
    garage.plug_in(auth_required=True)
    await probe.wait_text(setup.state("garage", "car_status"), "waiting_for_car")

    def command_topic(key: str) -> str:
        topic = discovery_topic(setup.prefix, setup.topics.base, "garage", _entity(key))
        config = (probe.latest(topic) or pytest.fail(f"no discovery for {key}")).json()
        return str(config["command_topic"])

    # What HA publishes: the button's payload_press, the number as text, the select's option.
    assert (await probe.command(command_topic("wallbox_control"), "PRESS"))["ok"]
    assert (await probe.command(command_topic("charging_current"), "10"))["ok"]
    assert (await probe.command(command_topic("phase_mode"), "1_phase"))["ok"]
    assert garage.set_calls == [{"trx": 0}, {"amp": 10}, {"psm": 1}]
    await probe.wait_text(setup.state("garage", "car_status"), "charging")
    await probe.wait_text(setup.state("garage", "phase_mode"), "1_phase")


@pytest.mark.parametrize(
    ("car", "set_calls", "error"),
    [
        ("charging", [{"frc": 1}], None),
        ("auth_required", [{"trx": 0}], None),
        ("complete", [{"frc": 2}], None),
        ("no_car", [], "no car connected: nothing to do"),
        ("error", [], "car state error: nothing to do"),
    ],
)
async def test_button_acts_on_the_car_state(
    setup: Setup,
    probe: MqttProbe,
    bridge: RunningBridge,
    car: str,
    set_calls: list[dict[str, Any]],
    error: str | None,
) -> None:
    garage = setup.charger("garage")
    if car != "no_car":
        garage.plug_in(auth_required=car == "auth_required")
    if car == "complete":
        garage.frc = 1
    if car == "error":
        garage.error_code = 1
    expected_status = {
        "charging": "charging",
        "auth_required": "waiting_for_car",
        "complete": "complete",
        "no_car": "idle",
        "error": "error",
    }[car]
    await probe.wait_text(setup.state("garage", "car_status"), expected_status)
    result = await probe.command(setup.cmd("garage", "wallbox_control"), "PRESS")
    assert result["ok"] is (error is None), result
    assert result.get("error") == error
    assert garage.set_calls == set_calls


@pytest.mark.parametrize("setup", [SLOW_POLLS], indirect=True)
@pytest.mark.parametrize(
    ("change", "error", "now"),
    [
        ("unplug", "no car connected: nothing to do", "idle"),
        (
            "car_full",
            "the car's state changed since the last poll (charging -> complete): nothing"
            " sent, press again",
            "complete",
        ),
    ],
)
async def test_the_button_acts_on_the_car_as_it_is_now_not_as_last_polled(
    setup: Setup, probe: MqttProbe, bridge: RunningBridge, change: str, error: str, now: str
) -> None:
    """The car left since the last poll (up to scan_interval ago, idle_scan_interval in
    an empty garage): the press went by the polled 'charging' and stopped the charger,
    frc=1, which the next car then found. A state that changed to another the button
    acts on is not acted on either: a site checked the press against the one before (a
    stop is let through a site's pause, a start is not)."""
    garage = setup.charger("garage")
    charger = bridge.bridge.chargers["garage"]
    garage.plug_in()
    mark = probe.mark()
    charger.poll_soon()
    await probe.wait_text(setup.state("garage", "car_status"), "charging", since=mark)
    if change == "unplug":  # no poll comes for a minute: the bridge shows it charging
        garage.unplug()
    else:
        garage.car_full = True
    result = await probe.command(setup.cmd("garage", "wallbox_control"), "PRESS")
    assert result["ok"] is False, result
    assert result["error"] == error
    assert garage.set_calls == []
    await probe.wait_text(setup.state("garage", "car_status"), now)


BAD_COMMANDS = [
    ("start_charging", b'{"charging_power": 10', "payload is not valid JSON"),
    ("frobnicate", b"{}", "unknown service 'frobnicate'"),
    ("start_charging", b'{"charging_power": 33}', "charging_power must be between 6 and 32 A"),
    ("change_charging_power", b'{"charging_power": 5}', "must be between 6 and 32 A, got 5"),
    ("change_charging_power", b"10.5", "charging_power must be an integer"),
    ("change_charging_power", b'"16"', "charging_power must be an integer"),
    ("set_phase", b'{"phase": 4}', "phase must be auto (0), 1_phase (1) or 3_phases (2, or 3)"),
    ("set_transaction", b'{"status": 1}', "status must be null (no transaction) or 0"),
    ("stop_charging", b'{"now": true}', "unknown parameter 'now' for stop_charging"),
    ("start_charging", b"x" * 5000, "payload of 5000 bytes is larger than 4096 bytes"),
]


@pytest.mark.parametrize(("service", "payload", "reason"), BAD_COMMANDS)
async def test_bad_commands_get_a_reason_and_no_api_call(
    setup: Setup,
    probe: MqttProbe,
    bridge: RunningBridge,
    service: str,
    payload: bytes,
    reason: str,
) -> None:
    garage = setup.charger("garage")
    try:
        parsed = json.loads(payload)
    except ValueError:
        parsed = None
    body = json.dumps({**parsed, "id": 42}).encode() if isinstance(parsed, dict) else payload
    result = await probe.command(setup.cmd("garage", service), body)
    assert result["ok"] is False
    assert reason in result["error"]
    if body is not payload:
        assert result["id"] == 42
    assert garage.set_calls == []
    # ... and the daemon goes on.
    assert (await probe.command(setup.cmd("garage", "set_phase"), "1"))["ok"] is True


async def test_unknown_charger_and_offline_commands_are_refused(
    setup: Setup, probe: MqttProbe, bridge: RunningBridge
) -> None:
    result = await probe.command(f"{setup.topics.base}/nosuch/cmd/stop_charging", "")
    assert result == {"service": "stop_charging", "ok": False, "error": "unknown charger 'nosuch'"}

    topic = setup.cmd("garage", "stop_charging")
    garage = setup.charger("garage")
    mark = probe.mark()
    garage.faults = Faults(http_status=403)
    await probe.wait_text(setup.topics.availability("garage"), "offline", since=mark)
    result = await probe.command(topic, "")
    assert result["error"].startswith("charger offline: "), result  # and why
    assert "(403)" in result["error"], result
    assert garage.set_calls == []


async def test_a_retained_command_is_not_replayed_when_the_bridge_subscribes(
    setup: Setup, probe: MqttProbe
) -> None:
    garage = setup.charger("garage")
    garage.plug_in()
    await probe.publish(setup.cmd("garage", "stop_charging"), '{"id": "stale"}', retain=True)
    running = RunningBridge(setup.settings)
    await running.start()
    try:
        result = (await probe.wait_for(setup.topics.result("garage"))).json()
        assert result == {
            "service": "stop_charging",
            "ok": False,
            "error": "retained command ignored: publish commands without retain",
            "id": "stale",
        }
        await probe.wait_text(setup.topics.availability("garage"), "online")
        assert garage.set_calls == []
        assert garage.car == 2
    finally:
        await running.stop()


@pytest.mark.parametrize("setup", [SLOW_POLLS], indirect=True)
@pytest.mark.parametrize(
    "faults",
    [Faults(http_status=403), Faults(http_status=404), Faults(success_false=True)],
    ids=["403", "404-outdated", "success-false"],
)
async def test_cloud_saying_offline_makes_the_charger_offline_at_once(
    setup: Setup, probe: MqttProbe, bridge: RunningBridge, faults: Faults
) -> None:
    charger = bridge.bridge.chargers["garage"]
    mark = probe.mark()
    setup.charger("garage").faults = faults
    charger.poll_soon()
    await probe.wait_text(setup.topics.availability("garage"), "offline", since=mark)
    assert charger.availability.failures == 1
    assert probe.last_text(setup.topics.availability("carport")) == "online"

    setup.charger("garage").faults = Faults()
    setup.charger("garage").plug_in()
    mark = probe.mark()
    charger.poll_soon()
    await probe.wait_text(setup.topics.availability("garage"), "online", since=mark)
    assert probe.last_text(setup.state("garage", "car_status")) == "charging"


@pytest.mark.parametrize("setup", [SLOW_POLLS], indirect=True)
@pytest.mark.parametrize(
    "faults",
    [
        Faults(http_status=500),
        Faults(http_status=502),
        Faults(http_status=422),
        Faults(garbage=True),
        Faults(body='{"car": 2, "amp": 1'),
        Faults(body="[1, 2, 3]"),
        Faults(delay=1.5),
    ],
    ids=["500", "502", "422", "not-json", "truncated-json", "not-an-object", "timeout"],
)
async def test_transient_failures_make_it_offline_after_three_in_a_row(
    setup: Setup, probe: MqttProbe, bridge: RunningBridge, faults: Faults
) -> None:
    charger = bridge.bridge.chargers["garage"]
    availability = setup.topics.availability("garage")
    setup.charger("garage").faults = faults
    for failures in (1, 2):
        charger.poll_soon()
        await until(lambda n=failures: charger.availability.failures == n, f"failure {failures}")  # type: ignore[misc]
        assert probe.last_text(availability) == "online"
    mark = probe.mark()
    charger.poll_soon()
    await probe.wait_text(availability, "offline", since=mark)
    assert charger.availability.failures == 3
    # Backoff: polling slows down, capped at 3x the scan interval.
    assert charger.next_delay() == 3 * 60

    mark = probe.mark()
    setup.charger("garage").faults = Faults()
    setup.charger("garage").plug_in()  # a car: polled at scan_interval, not the idle one
    charger.poll_soon()
    await probe.wait_text(availability, "online", since=mark)
    assert charger.next_delay() == 60


async def test_home_assistant_birth_republishes_discovery_and_states(
    setup: Setup, probe: MqttProbe, bridge: RunningBridge
) -> None:
    config_topic = discovery_topic(setup.prefix, setup.topics.base, "garage", _entity("name"))
    await probe.wait_for(config_topic)
    mark = probe.mark()
    await probe.publish(f"{setup.prefix}/status", "online")
    await probe.wait_for(config_topic, since=mark)
    await probe.wait_for(setup.state("garage", "energy_total"), since=mark)


async def test_configs_of_removed_chargers_are_cleared(setup: Setup, probe: MqttProbe) -> None:
    node = setup.topics.base
    stale = f"{setup.prefix}/sensor/{node}/oldcharger_energy_total/config"
    kept = discovery_topic(setup.prefix, setup.topics.base, "garage", _entity("energy_total"))
    # As an earlier run published it: its topics under this installation's base topic.
    old_config = {
        "name": "old",
        "state_topic": setup.state("oldcharger", "energy_total"),
        "availability": [{"topic": setup.topics.bridge_availability}],
        "origin": ORIGIN,
    }
    await probe.publish(stale, json.dumps(old_config), retain=True)
    await probe.wait_for(stale)
    running = RunningBridge(setup.settings)
    await running.start()
    try:
        await probe.wait_for(stale, lambda m: m.payload == b"")
        await probe.wait_for(kept, lambda m: m.payload != b"")
    finally:
        await running.stop()
    assert all(m.payload for m in probe.messages if m.topic == kept)


async def test_a_removed_chargers_configs_are_cleared_with_one_line_for_them_all(
    setup: Setup, probe: MqttProbe
) -> None:
    """A charger removed from the config logged one line per entity it had (132)."""
    node = setup.topics.base
    keys = sorted(STATUS_KEYS)[:40]
    stale = [f"{setup.prefix}/sensor/{node}/oldcharger_{key}/config" for key in keys]
    for topic, key in zip(stale, keys, strict=True):
        config = {"name": key, "state_topic": setup.state("oldcharger", key), "origin": ORIGIN}
        await probe.publish(topic, json.dumps(config), retain=True)
    await probe.wait_for(stale[-1])
    running = RunningBridge(setup.settings)
    with structlog.testing.capture_logs() as logs:
        await running.start()
        try:
            for topic in stale:
                await probe.wait_for(topic, lambda m: m.payload == b"")
        finally:
            await running.stop()
    [removal] = [e for e in logs if e["event"] == "discovery_removed"]
    assert removal["configs"] == len(stale)
    assert removal["first"] in stale


async def test_retained_values_of_removed_chargers_are_cleared(
    setup: Setup, probe: MqttProbe
) -> None:
    gone = [setup.topics.availability("oldcharger"), setup.state("oldcharger", "energy_total")]
    # Left by an earlier run: a charger since removed, and what must stay.
    kept = [setup.topics.bridge_availability, setup.topics.availability("garage")]
    for topic in gone + kept:
        await probe.publish(topic, "12.5" if topic.endswith("total") else "offline", retain=True)
        await probe.wait_for(topic)
    running = RunningBridge(setup.settings)
    await running.start()
    try:
        for topic in gone:
            await probe.wait_for(topic, lambda m: m.payload == b"")
        await probe.wait_text(setup.topics.availability("garage"), "online")
    finally:
        await running.stop()
    # The bridge's own availability and a configured charger's values are never swept.
    assert all(m.payload for m in probe.messages if m.topic in kept)


async def test_clean_stop_publishes_offline(
    setup: Setup, probe: MqttProbe, bridge: RunningBridge
) -> None:
    mark = probe.mark()
    await bridge.stop()
    await probe.wait_text(setup.topics.bridge_availability, "offline", since=mark)
    await probe.wait_text(setup.topics.availability("garage"), "offline", since=mark)


def test_unconfirmed_values_compare_types_too() -> None:
    assert unconfirmed_values({"amp": 10, "trx": None}, {"amp": 10, "trx": None}) == {}
    assert unconfirmed_values({"frc": 1}, {"frc": True}) == {"frc": {"expected": 1, "actual": True}}
    assert unconfirmed_values({"psm": 2}, {}) == {"psm": {"expected": 2, "actual": None}}
