"""Chargers that cannot hurt each other, and values and answers that cannot hurt us.

Absurd status values, hanging chargers, rate limits, secrets echoed by the cloud and
ids that JSON cannot hold: each stays with the charger or command it belongs to.
"""

from __future__ import annotations

import asyncio
import json
import math
import time
from email.utils import formatdate
from pathlib import Path
from typing import Any

import pytest
import structlog
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from goe2mqtt.catalogue import ADDED_DEFAULTS, STATE_ENTITIES, STATUS_KEYS, format_state
from goe2mqtt.charger.loop import Charger
from goe2mqtt.cli import main
from goe2mqtt.config.settings import parse_settings
from goe2mqtt.goe.client import parse_retry_after
from goe2mqtt.mqtt.topics import Topics
from goe2mqtt.sim.broker import MosquittoBroker
from goe2mqtt.sim.simulator import Faults, SimulatedCharger, Simulator

from ..conftest import (
    TOKEN,
    MqttProbe,
    RecordingPublisher,
    RunningBridge,
    Setup,
    make_settings,
    until,
)


def _strict_json(text: str | bytes) -> Any:
    """JSON as every other parser reads it: no NaN or Infinity."""

    def refuse(constant: str) -> None:
        raise ValueError(f"not JSON: {constant}")

    return json.loads(text, parse_constant=refuse)


# --- absurd values: that entity unknown, the charger alive ---------------------------


@pytest.mark.parametrize("setup", [{"scan_interval": 0.2}], indirect=True)
async def test_a_value_no_float_can_hold_makes_one_entity_unknown_not_a_frozen_charger(
    setup: Setup, probe: MqttProbe, bridge: RunningBridge
) -> None:
    garage = setup.charger("garage")
    with structlog.testing.capture_logs() as logs:
        garage.faults = Faults(values={"eto": 10**400}, only="status")
        await probe.wait_text(setup.state("garage", "energy_total"), "null")
        mark = probe.mark()
        garage.plug_in()  # the other values keep updating
        await probe.wait_text(setup.state("garage", "car_status"), "charging", since=mark)
        result = await probe.command(setup.cmd("garage", "change_charging_power"), "10")
        await asyncio.sleep(0.6)  # a few more polls: still no crash
    assert result["ok"] is True, result
    assert garage.amp == 10
    assert probe.last_text(setup.topics.availability("garage")) == "online"
    assert not [e for e in logs if e["event"] in ("poll_crashed", "task_failed")]
    unreadable = [e for e in logs if e["event"] == "value_unreadable"]
    assert [e["entity"] for e in unreadable] == ["energy_total"]  # logged once
    assert "out of range" in unreadable[0]["reason"]
    state = _strict_json(probe.last_text(setup.topics.json_state("garage")) or "")
    assert state["energy_total"] is None


hostile_values = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(min_value=-(10**400), max_value=10**400),
    st.sampled_from([10**400, -(10**400), 2**64, 2**53 + 1]),
    st.floats(allow_nan=True, allow_infinity=True),
    st.text(max_size=10),
    st.lists(st.floats(allow_nan=True) | st.integers(), max_size=20),
    st.dictionaries(st.text(max_size=4), st.integers() | st.none(), max_size=3),
)
# Not sse: a serial other than the charger's is refused on purpose (another charger at
# this address, or a peer pretending), the same on every transport; test_websocket_hostile
# and test_charger_mqtt say so. Every other key's value never stops a poll.
hostile_statuses = st.dictionaries(st.sampled_from(sorted(STATUS_KEYS - {"sse"})), hostile_values)


@settings(
    max_examples=150,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
@given(hostile=hostile_statuses)
async def test_any_value_for_any_key_never_stops_a_poll(
    polled_charger: tuple[Charger, SimulatedCharger, RecordingPublisher],
    hostile: dict[str, Any],
) -> None:
    """Random JSON for status keys, through HTTP and the whole poll path."""
    bridge, simulated, publisher = polled_charger
    # The simulated car charges in real time: stop its clock, or the energy and uptime
    # between the snapshot and the refresh would differ on a loaded machine.
    stopped = simulated.clock()
    simulated.clock = lambda: stopped
    simulated.faults = Faults()
    clean = {**ADDED_DEFAULTS, **simulated.status(STATUS_KEYS)}  # no PV feed, polled
    simulated.faults = Faults(values=hostile, only="status")
    bridge.poll_soon(60.0)  # the next poll reads every key, settings included
    assert await bridge.refresh()  # answered, mapped, published: never a crash
    published = {topic: payload.decode() for topic, payload in publisher.retained.items()}
    state = _strict_json(published["goe2mqtt/garage/state"])  # always valid JSON
    for entity in STATE_ENTITIES:
        if set(entity.reads) & hostile.keys():
            continue
        # What the hostile values did not touch reads as on a healthy charger.
        assert entity.value is not None
        expected = format_state(entity.value(clean))
        assert published[f"goe2mqtt/garage/{entity.key}"] == expected, entity.key
        assert format_state(state[entity.key]) == expected
    assert bridge.availability.online


# --- hanging chargers cost only themselves ------------------------------------------


async def test_hanging_chargers_do_not_starve_healthy_ones(
    broker: MosquittoBroker, tmp_path: Path
) -> None:
    healthy = [f"1{n:05d}" for n in range(10)]
    hanging = [f"2{n:05d}" for n in range(190)]
    simulator = Simulator(SimulatedCharger(s, TOKEN) for s in healthy + hanging)
    await simulator.start()
    for serial in hanging:
        simulator.charger(serial).faults = Faults(delay=60)  # accept, never answer
    raw = make_settings(broker, simulator)
    raw["chargers"] = [
        {"name": f"c{serial}", "serial": serial, "token": TOKEN,
         "api_url": simulator.url_for(serial), "scan_interval": 1,
         "idle_scan_interval": 1, "timeout": 3}
        for serial in healthy + hanging
    ]  # fmt: skip
    settings = parse_settings(raw)
    topics = Topics(settings.mqtt.base_topic)
    running = RunningBridge(settings)
    await running.start()
    try:
        chargers = running.bridge.chargers
        await until(
            lambda: all(
                f"c{s}" in chargers and chargers[f"c{s}"].availability.online for s in healthy
            ),
            "healthy online",
        )
        polls_before = {s: simulator.charger(s).status_calls for s in healthy}
        result_topic = topics.result(f"c{healthy[0]}")
        with structlog.testing.capture_logs() as logs:
            async with MqttProbe(broker.host, broker.port, [result_topic]) as probe:
                mark = probe.mark()
                await probe.publish(topics.command(f"c{healthy[0]}", "set_phase"), '{"phase": 1}')
                # Conditions, not a clock: bounded only for liveness (a loaded machine).
                result = (await probe.wait_for(result_topic, since=mark, within=60)).json()
                # Every healthy charger kept being polled while the hanging ones held a
                # connection each and timed out again and again (timeout 3 s).
                await until(
                    lambda: all(
                        simulator.charger(s).status_calls - polls_before[s] >= 5 for s in healthy
                    ),
                    "five more polls of every healthy charger",
                    within=60,
                )
        assert result["ok"] is True, result
        for serial in healthy:
            assert chargers[f"c{serial}"].availability.online
        healthy_names = {f"c{s}" for s in healthy}
        failed = [e for e in logs if e["event"] == "poll_failed" and e["charger"] in healthy_names]
        assert failed == []
    finally:
        await running.stop()
        await simulator.stop()


# --- the cloud says "slow down" ----------------------------------------------------


def test_retry_after_is_read_as_seconds_or_an_http_date() -> None:
    now = time.time()
    assert parse_retry_after("120") == 120.0
    assert parse_retry_after(formatdate(now + 90, usegmt=True), now=now) == pytest.approx(90, 1)
    assert parse_retry_after(formatdate(now - 90, usegmt=True), now=now) == 0.0
    assert parse_retry_after("soon") is None
    assert parse_retry_after(None) is None


@pytest.mark.parametrize("status", [429, 503])
@pytest.mark.parametrize(
    "setup", [{"scan_interval": 0.2, "idle_scan_interval": 0.2}], indirect=True
)
async def test_retry_after_is_honoured_per_charger(
    status: int, setup: Setup, probe: MqttProbe, bridge: RunningBridge
) -> None:
    garage, carport = setup.charger("garage"), setup.charger("carport")
    garage.faults = Faults(http_status=status, retry_after="3", only="status")
    seen = bridge.bridge.chargers["garage"].availability
    await until(lambda: seen.failures > 0, "the 429/503 seen")
    garage_calls, carport_calls = garage.status_calls, carport.status_calls
    requests_before = garage.set_requests
    refused = await probe.command(setup.cmd("garage", "set_phase"), "1")
    # The other charger is polled as usual (a count reached, not counted in a set time:
    # a loaded machine polls less in 1.5 s); the rate-limited one is left alone.
    await until(lambda: carport.status_calls - carport_calls >= 4, "the other polled as usual")
    assert garage.status_calls == garage_calls
    assert refused["ok"] is False
    assert refused["error"].startswith("rate limited by the cloud: retry after"), refused
    assert garage.set_requests == requests_before
    garage.faults = Faults()
    await until(lambda: garage.status_calls > garage_calls, "polled again after 3 s")


# --- secrets and ids ----------------------------------------------------------------


@pytest.mark.parametrize(
    ("token", "problem"),
    [("abc\ndef", "newline"), ("abc\tdef", "tab"), ("abc\x00", "NUL")],
)
def test_a_secret_with_a_control_character_stops_check_config(
    token: str, problem: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    config = tmp_path / "config.yaml"
    config.write_text(
        json.dumps(
            {
                "mqtt": {"host": "127.0.0.1"},
                "chargers": [{"name": "garage", "serial": "012345", "token": token}],
            }
        )
    )
    assert main(["check-config", "--config", str(config)]) == 2, problem
    error = capsys.readouterr().err
    assert "chargers[0].token: contains a control character" in error
    assert token not in error


def test_a_token_file_with_a_newline_inside_is_refused(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    secret = tmp_path / "token"
    secret.write_text("abc\ndef\n")  # the trailing newline is fine, the inner one is not
    secret.chmod(0o600)
    config = tmp_path / "config.yaml"
    config.write_text(
        json.dumps(
            {
                "mqtt": {"host": "127.0.0.1", "password": "pw\r"},
                "chargers": [{"name": "garage", "serial": "012345", "token_file": str(secret)}],
            }
        )
    )
    assert main(["check-config", "--config", str(config)]) == 2
    assert "mqtt.password: contains a control character" in capsys.readouterr().err
    config.write_text(config.read_text().replace('"pw\\r"', '"pw"'))
    assert main(["check-config", "--config", str(config)]) == 2
    assert "chargers[0].token_file: contains a control character" in capsys.readouterr().err


@pytest.mark.parametrize("setup", [{"scan_interval": 60}], indirect=True)
async def test_a_token_the_cloud_echoes_is_redacted_in_the_result(
    setup: Setup, probe: MqttProbe, bridge: RunningBridge
) -> None:
    setup.charger("garage").faults = Faults(
        http_status=422, reason=f"key refused for token {TOKEN}", only="set"
    )
    result = await probe.command(setup.cmd("garage", "set_phase"), '{"phase": 1, "id": "t"}')
    assert result["ok"] is False
    assert result["error"] == "every key rejected (422): key refused for token ***"
    assert all(TOKEN.encode() not in m.payload for m in probe.messages)


@pytest.mark.parametrize("setup", [{"scan_interval": 60}], indirect=True)
@pytest.mark.parametrize(
    "payload",
    ['{"id": 1e400, "phase": 1}', '{"id": -1e999, "phase": 1}', f'{{"id": {10**20}, "phase": 1}}'],
)
async def test_an_id_json_cannot_hold_is_refused_with_valid_json(
    payload: str, setup: Setup, probe: MqttProbe, bridge: RunningBridge
) -> None:
    mark = probe.mark()
    await probe.publish(setup.cmd("garage", "set_phase"), payload)
    message = await probe.wait_for(setup.topics.result("garage"), since=mark)
    result = _strict_json(message.payload)
    assert result == {
        "service": "set_phase",
        "ok": False,
        "error": "id must be a string or a number within ±2**53",
    }
    assert setup.charger("garage").set_calls == []


def test_results_are_valid_json_whatever_the_charger_sent() -> None:
    from goe2mqtt.commands.payloads import command_result, result_json

    result = command_result(
        "set_phase",
        ok=False,
        request_id=1,
        error="not confirmed",
        unconfirmed={"psm": {"expected": 1, "actual": math.nan}},
    )
    assert _strict_json(result_json(result))["unconfirmed"]["psm"]["actual"] is None


async def test_an_unnamed_card_slot_is_null_on_its_topic_and_in_the_json_state(
    polled_charger: tuple[Charger, SimulatedCharger, RecordingPublisher],
) -> None:
    bridge, simulated, publisher = polled_charger
    assert simulated.card_names[2] == ""  # slot 2 has no name
    assert await bridge.refresh()
    published = {topic: payload.decode() for topic, payload in publisher.retained.items()}
    assert published["goe2mqtt/garage/card_2_name"] == "null"
    state = _strict_json(published["goe2mqtt/garage/state"])
    assert state["card_2_name"] is None
    assert state["card_0_name"] == "Alice"
