"""Never lose a command: confirmed sets, retries, persistent sessions, restarts, health."""

from __future__ import annotations

import asyncio
import dataclasses
import json
import re
import time
from collections.abc import Iterator
from typing import Any

import pytest
import structlog

from goe2mqtt.config.settings import Settings, parse_settings
from goe2mqtt.mqtt.topics import Topics
from goe2mqtt.sim.broker import MosquittoBroker
from goe2mqtt.sim.simulator import Faults, Simulator

from ..conftest import MqttProbe, RunningBridge, Setup, make_settings, running_bridge, until

SLOW_POLLS = {"scan_interval": 60}  # only commands and the test make the bridge look


# --- set calls: confirmed, retried once when worth it -------------------------------

# (faults on /api/set only, set requests the charger sees, ok, error)
SET_FAULTS = {
    "403": (Faults(http_status=403), 1, False, "charger offline or cloud API disabled (403)"),
    "404": (Faults(http_status=404), 1, False, "no recent data from the charger (404)"),
    "422": (Faults(http_status=422), 1, False, "every key rejected (422)"),
    "500-always": (Faults(http_status=500), 2, False, "server error (500)"),
    "500-once": (Faults(http_status=500, times=1), 2, True, None),
    # The answers time out but the sets arrive: the read-back shows the value, so ok.
    "timeout-always": (Faults(delay=1.5), 2, True, None),
    "timeout-once": (Faults(delay=1.5, times=1), 2, True, None),
    "not-json": (Faults(garbage=True), 2, False, "answer is not valid JSON"),
    "truncated-json": (Faults(body='{"amp": tr'), 2, False, "answer is not valid JSON"),
    "202-but-lost": (Faults(drop_sets=True), 1, False, "not confirmed"),
    "202-wrong-types": (Faults(body='{"amp": "yes"}'), 1, False, "not confirmed"),
}


@pytest.mark.parametrize("setup", [SLOW_POLLS], indirect=True)
@pytest.mark.parametrize("case", SET_FAULTS.values(), ids=SET_FAULTS.keys())
async def test_set_faults_give_the_documented_result(
    setup: Setup, probe: MqttProbe, bridge: RunningBridge, case: tuple[Faults, int, bool, str]
) -> None:
    faults, requests, ok, error = case
    garage = setup.charger("garage")
    garage.faults = dataclasses.replace(faults, only="set")
    result = await probe.command(
        setup.cmd("garage", "change_charging_power"), '{"charging_power": 10, "id": 7}'
    )
    assert result["ok"] is ok, result
    if error is None:
        assert "error" not in result
    else:
        assert result["error"].startswith(error)
    assert result["id"] == 7
    assert garage.set_requests == requests
    assert (garage.amp == 10) is ok  # ok is said only when the charger holds the value
    if error == "not confirmed":
        assert result["unconfirmed"] == {"amp": {"expected": 10, "actual": 16}}
    # A failed set is a failed command, not a dead charger: polls still work.
    assert bridge.bridge.chargers["garage"].availability.online
    assert probe.last_text(setup.topics.availability("garage")) == "online"
    # The runner keeps its failure; the charger's last error (bridge/info) shows it.
    last_error = bridge.bridge.chargers["garage"].last_error
    if ok:
        assert last_error is None, last_error
    else:
        assert last_error is not None
        assert last_error[1] == f"change_charging_power failed: {result['error']}"
        assert bridge.bridge.info()["last_error"]["error"] == last_error[1][:200]


async def test_a_confirmed_command_shows_every_key_it_set(
    setup: Setup, probe: MqttProbe, bridge: RunningBridge
) -> None:
    garage = setup.charger("garage")
    garage.plug_in()
    result = await probe.command(setup.cmd("garage", "start_charging"), '{"charging_power": 12}')
    assert result == {
        "service": "start_charging",
        "ok": True,
        "applied": [{"amp": 12}, {"frc": 2}],
    }
    assert garage.set_calls == [{"amp": 12}, {"frc": 2}]


# --- garbage from the cloud: that value unknown, the daemon alive -------------------


@pytest.mark.parametrize("setup", [SLOW_POLLS], indirect=True)
async def test_values_of_the_wrong_type_make_only_their_sensors_unknown(
    setup: Setup, probe: MqttProbe, bridge: RunningBridge
) -> None:
    charger = bridge.bridge.chargers["garage"]
    setup.charger("garage").faults = Faults(
        values={"eto": "lots", "psm": None, "nrg": {"a": 1}}, missing=["wh"]
    )
    mark = probe.mark()
    with structlog.testing.capture_logs() as logs:
        charger.poll_soon()
        await probe.wait_text(setup.state("garage", "energy_total"), "null", since=mark)
        await probe.wait_text(setup.state("garage", "phase_switch_mode"), "null", since=mark)
        await probe.wait_text(setup.state("garage", "energy_since_car_connected"), "null")
        await probe.wait_text(setup.state("garage", "charging_power"), "null")
    assert probe.last_text(setup.state("garage", "car_status")) == "idle"
    assert probe.last_text(setup.topics.availability("garage")) == "online"
    unreadable = {e["entity"]: e["reason"] for e in logs if e["event"] == "value_unreadable"}
    assert {"energy_total", "energy_since_car_connected", "charging_power"} <= unreadable.keys()
    assert unreadable["energy_total"] == "eto: expected a number, got str"
    assert unreadable["energy_since_car_connected"] == "wh: missing from the status"
    # null is how go-e says "not known": unknown, but nothing to warn about.
    assert "phase_switch_mode" not in unreadable


# --- persistent sessions: commands wait for the bridge -----------------------------


@pytest.fixture
def persistent_broker() -> Iterator[MosquittoBroker]:
    with MosquittoBroker(persistence=True) as running:
        yield running


def _bridge_settings(broker: MosquittoBroker, simulator: Simulator, **mqtt: Any) -> Any:
    raw = make_settings(broker, simulator, scan_interval=60)
    raw["mqtt"].update(mqtt)
    return parse_settings(raw)


async def _leave_a_session(settings: Settings, probe: MqttProbe) -> None:
    """Run a bridge once and stop it: the broker keeps its session, as after a restart."""
    first = RunningBridge(settings)
    await first.start()
    await probe.wait_text(Topics(settings.mqtt.base_topic).availability("garage"), "online")
    await first.stop()


async def test_a_command_sent_while_the_broker_restarts_runs_exactly_once(
    persistent_broker: MosquittoBroker, simulator: Simulator
) -> None:
    settings = _bridge_settings(persistent_broker, simulator)
    topics = Topics(settings.mqtt.base_topic)
    garage = simulator.charger("012345")
    garage.plug_in()
    running = RunningBridge(settings)
    await running.start()
    try:
        async with MqttProbe(
            persistent_broker.host, persistent_broker.port, [f"{topics.base}/#"]
        ) as probe:
            await probe.wait_text(topics.availability("garage"), "online")
        persistent_broker.stop()  # SIGTERM: Mosquitto saves its sessions
        await until(lambda: not running.bridge.mqtt.connected, "bridge noticing")
        persistent_broker.start()
        async with MqttProbe(
            persistent_broker.host, persistent_broker.port, [f"{topics.base}/#"]
        ) as probe:
            await probe.publish(topics.command("garage", "stop_charging"), '{"id": "late"}')
            # It reached the broker before the bridge was back: it waits in the session.
            assert not running.bridge.mqtt.connected
            result = (await probe.wait_for(topics.result("garage"))).json()
            assert result == {
                "service": "stop_charging",
                "ok": True,
                "id": "late",
                "applied": [{"frc": 1}],
            }
            await asyncio.sleep(1.0)  # a duplicate delivery would show by now
            assert [m.json()["id"] for m in probe.since(0, topics.result("garage"))] == ["late"]
        assert garage.set_calls == [{"frc": 1}]
    finally:
        await running.stop()


async def test_commands_wait_for_a_restarted_bridge_and_stale_ones_are_refused(
    broker: MosquittoBroker, simulator: Simulator
) -> None:
    settings = _bridge_settings(broker, simulator)
    topics = Topics(settings.mqtt.base_topic)
    garage = simulator.charger("012345")
    async with MqttProbe(broker.host, broker.port, [f"{topics.base}/#"]) as probe:
        await _leave_a_session(settings, probe)

        # Sent while no bridge runs: the broker keeps them in the bridge's session.
        await probe.publish(topics.command("garage", "set_phase"), '{"phase": 1, "id": 1}')
        old = time.time() - 400
        await probe.publish(
            topics.command("garage", "set_phase"), json.dumps({"phase": 2, "id": 2, "ts": old})
        )
        mark = probe.mark()
        second = RunningBridge(settings)
        await second.start()
        try:
            fresh = await probe.wait_for(topics.result("garage"), lambda m: m.json()["id"] == 1)
            assert fresh.json()["ok"] is True
            stale = (
                await probe.wait_for(topics.result("garage"), lambda m: m.json()["id"] == 2)
            ).json()
            assert stale["ok"] is False
            assert re.fullmatch(r"stale: sent 40\d s ago, max_command_age is 300 s", stale["error"])
            assert garage.set_calls == [{"psm": 1}]
            assert len(probe.since(mark, topics.result("garage"))) == 2
        finally:
            await second.stop()


async def test_the_session_ends_after_max_command_age_so_nothing_runs_late(
    broker: MosquittoBroker, simulator: Simulator
) -> None:
    settings = _bridge_settings(broker, simulator, max_command_age=1)
    topics = Topics(settings.mqtt.base_topic)
    garage = simulator.charger("012345")
    async with MqttProbe(broker.host, broker.port, [f"{topics.base}/#"]) as probe:
        await _leave_a_session(settings, probe)
        # No "ts": only the session's expiry can keep this from running late.
        await probe.publish(topics.command("garage", "set_phase"), '{"phase": 1, "id": "old"}')
        await asyncio.sleep(2.5)
        mark = probe.mark()
        second = RunningBridge(settings)
        await second.start()
        try:
            await probe.wait_text(topics.availability("garage"), "online", since=mark)
            now = await probe.command(topics.command("garage", "set_phase"), '{"phase": 2}')
            assert now["ok"] is True
            assert [m.json().get("id") for m in probe.since(mark, topics.result("garage"))] == [
                None
            ]
            assert garage.set_calls == [{"psm": 2}]
        finally:
            await second.stop()


# --- health --------------------------------------------------------------------------


async def test_bridge_info_tells_polls_failures_and_command_counts(
    setup: Setup, probe: MqttProbe, broker: MosquittoBroker
) -> None:
    async with running_bridge(setup, probe, info_interval=0.2):
        assert (await probe.command(setup.cmd("garage", "set_phase"), "1"))["ok"]
        assert not (await probe.command(setup.cmd("garage", "set_phase"), "7"))["ok"]
        assert not (await probe.command(f"{setup.topics.base}/nosuch/cmd/set_phase", "1"))["ok"]
        setup.charger("carport").faults = Faults(http_status=500)

        def fresh(message: Any) -> bool:
            info = message.json()
            return (
                info["commands"] == {"ok": 1, "rejected": 2, "failed": 0}
                and info["chargers"]["carport"]["consecutive_failures"] >= 1
            )

        await probe.wait_for(setup.topics.bridge_info, fresh)
        async with MqttProbe(broker.host, broker.port, [setup.topics.bridge_info]) as late:
            message = await late.wait_for(setup.topics.bridge_info)
        assert message.retain  # a health check can read it at any time
        info = message.json()
        assert info["version"]
        assert info["uptime"] >= 0
        garage = info["chargers"]["garage"]
        assert garage["online"] is True
        assert garage["consecutive_failures"] == 0
        assert garage["commands"] == {"ok": 1, "rejected": 1, "failed": 0}
        assert garage["last_poll"].endswith("+00:00")


async def test_mqtt_3_1_1_brokers_get_a_persistent_session_too(
    broker: MosquittoBroker, simulator: Simulator
) -> None:
    settings = _bridge_settings(broker, simulator, protocol="3.1.1")
    topics = Topics(settings.mqtt.base_topic)
    async with MqttProbe(broker.host, broker.port, [f"{topics.base}/#"]) as probe:
        await _leave_a_session(settings, probe)
        await probe.publish(topics.command("garage", "set_phase"), '{"phase": 2, "id": "v3"}')
        second = RunningBridge(settings)
        await second.start()
        try:
            result = await probe.wait_for(topics.result("garage"), lambda m: b"v3" in m.payload)
            assert result.json()["ok"] is True
            assert simulator.charger("012345").set_calls == [{"psm": 2}]
        finally:
            await second.stop()
