"""The edges of what README's "What is guaranteed" promises, each tried as a careless or
hostile user would, through a real Mosquitto: retained clears, refused publishes,
actions, the serial, session-scoped redelivery, clock jumps, log volume."""

from __future__ import annotations

import asyncio
import json
import signal
import time
from pathlib import Path
from typing import Any

import pytest
import structlog

from goe2mqtt.commands.journal import Journal
from goe2mqtt.config.settings import parse_settings
from goe2mqtt.goe.client import parse_retry_after
from goe2mqtt.mqtt.session import MqttOptions, MqttSession
from goe2mqtt.mqtt.topics import Topics
from goe2mqtt.sim.broker import MosquittoBroker
from goe2mqtt.sim.simulator import Faults, Simulator

from ..conftest import (
    Daemon,
    MqttProbe,
    RunningBridge,
    garage_bridge,
    make_settings,
    until,
    write_config,
)


def _online(running: RunningBridge) -> bool:
    garage = running.bridge.chargers.get("garage")
    return garage is not None and garage.availability.online


async def _result(probe: MqttProbe, topics: Topics, service: str, payload: Any) -> Any:
    mark = probe.mark()
    request = {"id": f"{service}-{mark}"}
    body = payload if isinstance(payload, dict) else {"value": payload}
    await probe.publish(topics.command("garage", service), json.dumps({**body, **request}))
    found = await probe.wait_for(
        topics.result("garage"), lambda m: m.json().get("id") == request["id"], since=mark
    )
    return found.json()


# --- 8. clearing a retained command does not run it -------------------------------------


async def test_clearing_a_retained_command_does_not_run_it(
    broker: MosquittoBroker, simulator: Simulator
) -> None:
    garage = simulator.charger("012345")
    garage.plug_in()
    async with garage_bridge(broker, simulator) as (topics, _, probe):
        started = await _result(probe, topics, "start_charging", {})
        assert started["ok"] is True, started
        mark = probe.mark()
        stop = topics.command("garage", "stop_charging")
        await probe.publish(stop, b"", retain=True)  # mosquitto_pub -r -n: a clear
        await probe.publish(stop, b"{}", retain=True)  # a retained command: refused
        await probe.publish(stop, b"", retain=True)
        barrier = await _result(probe, topics, "set_phase", {"phase": "auto"})
        assert barrier["ok"] is True
        answered = [m.json() for m in probe.since(mark, topics.result("garage"))]
        stops = [r for r in answered if r["service"] == "stop_charging"]
        assert [r["error"] for r in stops] == [
            "retained command ignored: publish commands without retain"
        ]
        assert garage.frc == 2  # still charging


# --- 6. a publish the broker refuses is an error, never taken as delivered ----------------


async def test_results_and_states_the_broker_refuses_are_logged_and_counted(
    simulator: Simulator, tmp_path: Path
) -> None:
    base = f"goeacl{tmp_path.name[-8:].replace('_', '')}"
    acl = tmp_path / "acl"
    acl.write_text(
        f"topic readwrite #\ntopic deny {base}/garage/cmd/result\n"
        f"topic deny {base}/garage/charging_current\n"
    )
    with MosquittoBroker(extra_config=(f"acl_file {acl}",)) as broker:
        raw = make_settings(broker, simulator)
        raw["mqtt"]["base_topic"] = base
        settings = parse_settings(raw)
        topics = Topics(base)
        running = RunningBridge(settings)
        with structlog.testing.capture_logs() as logs:
            await running.start()
            try:
                await until(lambda: _online(running), "online")
                async with MqttProbe(broker.host, broker.port, [f"{base}/#"]) as probe:
                    await probe.publish(topics.command("garage", "set_phase"), '{"phase": 1}')
                    await until(lambda: running.bridge.desk.results.refused >= 1, "refused")
                    await probe.publish(topics.command("garage", "set_phase"), '{"phase": 2}')
                    await until(lambda: running.bridge.desk.results.refused >= 2, "again")
                refused = running.bridge.mqtt.refused
                await until(lambda: topics.state("garage", "charging_current") in refused, "state")
                info = running.bridge.info()
                owed = running.bridge.desk.journal.count().get("done", 0)
            finally:
                await running.stop()
    assert info["results_refused"] >= 2
    assert info["mqtt_refused"]["count"] >= 3
    assert "Not authorized" in info["mqtt_refused"]["topics"][topics.result("garage")]
    logged = [e for e in logs if e["event"] == "mqtt_publish_refused"]
    assert sorted(e["topic"] for e in logged) == sorted(
        [topics.result("garage"), topics.state("garage", "charging_current")]
    )  # once per topic
    assert owed >= 2  # the journal keeps them owed for the next start


# --- 5. an action is never sent twice ----------------------------------------------------


async def test_a_restart_whose_answer_is_lost_is_not_sent_again(
    broker: MosquittoBroker, simulator: Simulator
) -> None:
    garage = simulator.charger("012345")
    async with garage_bridge(broker, simulator, http_timeout=0.5) as (topics, _, probe):
        garage.faults = Faults(delay=3, only="set")
        result = await _result(probe, topics, "restart", {})
    assert garage.set_requests == 1
    assert result["ok"] is False
    assert result["error"].startswith("outcome unknown: timed out"), result
    assert result["sent"] == [{"rst": 1}], result


# --- 9. the serial is checked on every answer --------------------------------------------


async def test_a_charger_answering_with_another_serial_is_offline_and_takes_no_command(
    broker: MosquittoBroker, simulator: Simulator, tmp_path: Path
) -> None:
    raw = make_settings(broker, simulator, scan_interval=0.3)
    raw["chargers"][0]["api_url"] = simulator.url_for("067890")  # the carport answers
    topics = Topics(raw["mqtt"]["base_topic"])
    daemon = Daemon(write_config(tmp_path, raw))
    async with MqttProbe(broker.host, broker.port, [f"{topics.base}/#"]) as probe:
        await daemon.start()
        try:
            await probe.wait_for(topics.bridge_info, lambda m: m.json()["chargers_online"] == 0)
            result = await _result(probe, topics, "set_phase", {"phase": 1})
        finally:
            assert await daemon.end(signal.SIGTERM) == 0
    assert result["ok"] is False
    assert "answers as serial 067890" in result["error"], result
    assert probe.last_text(topics.availability("garage")) == "offline"
    assert probe.latest(topics.state("garage", "charging_current")) is None  # nothing published
    assert simulator.charger("067890").set_calls == []
    warned = [e for e in daemon.events() if e["event"] == "poll_failed" and e["level"] == "warning"]
    assert len(warned) == 1  # once, not per poll
    assert "answers as serial 067890" in warned[0]["reason"]


# --- 12. booleans are true/false on the wire ---------------------------------------------


async def test_the_generic_set_sends_a_boolean_for_a_switch_given_1(
    broker: MosquittoBroker, simulator: Simulator
) -> None:
    garage = simulator.charger("012345")
    async with garage_bridge(broker, simulator) as (topics, _, probe):
        result = await _result(probe, topics, "set", {"acp": 1})
    assert result["ok"] is True, result
    assert result["applied"] == [{"acp": True}]
    assert garage.set_calls[-1] == {"acp": True}


# --- 11. garbage a charger sends is a reason, not "internal error" -----------------------


async def test_a_set_answer_nested_too_deep_is_a_transport_error(
    broker: MosquittoBroker, simulator: Simulator
) -> None:
    garage = simulator.charger("012345")
    async with garage_bridge(broker, simulator) as (topics, _, probe):
        garage.faults = Faults(body="[" * 200_000, only="set")
        result = await _result(probe, topics, "set_phase", {"phase": 1})
    assert result["ok"] is False
    assert result["error"] == "answer is not valid JSON", result


def test_a_retry_after_that_is_not_ascii_digits_falls_back_to_the_default() -> None:
    assert parse_retry_after("²") is None
    assert parse_retry_after("٣") is None  # an Arabic-Indic three
    assert parse_retry_after("30") == 30.0


# --- 14. sustained bad input does not flood the log --------------------------------------


async def test_repeated_refusals_are_logged_once_a_minute_with_a_count(
    broker: MosquittoBroker, simulator: Simulator
) -> None:
    async with garage_bridge(broker, simulator) as (topics, _, probe):
        with structlog.testing.capture_logs() as logs:
            mark = probe.mark()
            for n in range(200):
                await probe.publish(
                    topics.command("garage", "set_phase"), f'{{"phase": 9, "id": {n}}}'
                )
            await until(
                lambda: len(probe.since(mark, topics.result("garage"))) >= 200, "all answered"
            )
    loud = [e for e in logs if e["event"] == "command_rejected" and e["log_level"] == "warning"]
    assert len(loud) == 1, loud
    assert len([e for e in logs if e["event"] == "command_rejected"]) == 200  # debug: all


# --- 16. the bridge's own ages do not follow the wall clock ------------------------------


async def test_a_wall_clock_jump_forward_does_not_make_waiting_commands_stale(
    broker: MosquittoBroker, simulator: Simulator, monkeypatch: pytest.MonkeyPatch
) -> None:
    garage = simulator.charger("012345")
    raw = make_settings(broker, simulator, scan_interval=60)
    raw["mqtt"]["max_command_age"] = 60
    raw["chargers"][0]["timeout"] = 5.0
    settings = parse_settings(raw)
    topics = Topics(settings.mqtt.base_topic)
    running = RunningBridge(settings)
    await running.start()
    try:
        await until(lambda: _online(running), "online")
        async with MqttProbe(broker.host, broker.port, [f"{topics.base}/#"]) as probe:
            garage.faults = Faults(delay=0.5, only="set", times=1)  # the first one waits
            mark = probe.mark()
            await probe.publish(topics.command("garage", "set_phase"), '{"phase": 1, "id": 1}')
            await probe.publish(topics.command("garage", "set_phase"), '{"phase": 2, "id": 2}')
            await until(lambda: garage.set_requests >= 1, "the first set under way")
            wall = time.time
            monkeypatch.setattr(time, "time", lambda: wall() + 3600)  # NTP, a VM resumed
            await until(lambda: len(probe.since(mark, topics.result("garage"))) >= 2, "both")
            results = {m.json()["id"]: m.json() for m in probe.since(mark, topics.result("garage"))}
    finally:
        monkeypatch.undo()
        await running.stop()
    assert results[2]["ok"] is True, results[2]


# --- 4. recognising a redelivery is scoped to the broker's session -----------------------


async def test_a_connect_without_a_session_forgets_the_packet_ids_of_earlier_ones(
    broker: MosquittoBroker, tmp_path: Path
) -> None:
    journal = Journal(tmp_path / "j.journal")
    first = journal.record("garage", "stop_charging", b"{}", retained=False, received=1.0, mid=7)
    assert first is not None
    # A kill -9 before reading would make the broker deliver again with DUP: recognised.
    assert journal.record("garage", "stop_charging", b"{}", retained=False, received=2.0,
                          mid=7, dup=True) is None  # fmt: skip
    forgotten = asyncio.Event()

    def new_session() -> None:
        journal.forget_packet_ids()
        forgotten.set()

    session = MqttSession(
        MqttOptions(host=broker.host, port=broker.port, client_id=f"scope-{tmp_path.name}"),
        [],
        on_new_session=new_session,
    )
    task = asyncio.create_task(session.run(lambda message: None))
    try:
        await asyncio.wait_for(forgotten.wait(), 10)
    finally:
        session.stop()
        await asyncio.wait_for(task, 10)
    # The same packet id in a new session is a new command, DUP or not.
    again = journal.record("garage", "stop_charging", b"{}", retained=False, received=3.0,
                           mid=7, dup=True)  # fmt: skip
    assert again is not None
    journal.close()


async def test_a_local_charger_remembers_its_serial_and_refuses_an_impostor(
    broker: MosquittoBroker, simulator: Simulator, tmp_path: Path
) -> None:
    """No serial configured: the first run learns 012345; after a DHCP change the same
    address answers as 067890, and that one is not published as the garage."""
    raw = make_settings(broker, simulator, scan_interval=0.3, transport="local")
    raw["state_dir"] = str(tmp_path / "state")
    topics = Topics(raw["mqtt"]["base_topic"])
    async with MqttProbe(broker.host, broker.port, [f"{topics.base}/#"]) as probe:
        first = Daemon(write_config(tmp_path, raw))
        await first.start()
        await probe.wait_text(topics.availability("garage"), "online")
        assert await first.end(signal.SIGTERM) == 0
        raw["chargers"][0]["host"] = simulator.local_hosts["067890"]
        second = Daemon(write_config(tmp_path, raw))
        mark = probe.mark()
        await second.start()
        try:
            await probe.wait_for(
                topics.bridge_info, lambda m: m.json()["chargers_online"] == 0, since=mark
            )
            result = await _result(probe, topics, "set_phase", {"phase": 1})
        finally:
            assert await second.end(signal.SIGTERM) == 0
    assert "answers as serial 067890, learnt earlier 012345" in result["error"], result
    assert probe.since(mark, topics.state("garage", "charging_current")) == []


async def test_a_restart_while_the_charger_is_unreachable_keeps_its_device_facts(
    broker: MosquittoBroker, simulator: Simulator, tmp_path: Path
) -> None:
    """The second run cannot reach the charger: it announces the model and firmware the
    first run learnt, instead of overwriting them in Home Assistant with defaults."""
    raw = make_settings(broker, simulator, scan_interval=0.3)
    raw["state_dir"] = str(tmp_path / "state")
    topics = Topics(raw["mqtt"]["base_topic"])
    prefix = raw["mqtt"]["discovery_prefix"]
    config_topic = f"{prefix}/sensor/{topics.base}/garage_energy_total/config"
    garage = simulator.charger("012345")
    async with MqttProbe(broker.host, broker.port, [f"{topics.base}/#", f"{prefix}/#"]) as probe:
        first = Daemon(write_config(tmp_path, raw))
        await first.start()
        learnt = await probe.wait_for(
            config_topic, lambda m: m.json()["device"].get("sw_version") == "60.4"
        )
        assert await first.end(signal.SIGTERM) == 0
        garage.faults = Faults(http_status=500)  # unreachable from now on
        mark = probe.mark()
        second = Daemon(write_config(tmp_path, raw))
        await second.start()
        try:
            announced = await probe.wait_for(config_topic, since=mark)
            await probe.wait_for(
                topics.bridge_info, lambda m: m.json()["chargers_online"] == 0, since=mark
            )
        finally:
            assert await second.end(signal.SIGTERM) == 0
    assert announced.json()["device"] == learnt.json()["device"]
    assert announced.json()["device"]["model"] == "go-eCharger_V4"


async def test_a_broker_that_stops_cleanly_is_named_as_the_cause(
    own_broker: MosquittoBroker, simulator: Simulator, tmp_path: Path
) -> None:
    raw = make_settings(own_broker, simulator, scan_interval=60)
    topics = Topics(raw["mqtt"]["base_topic"])
    daemon = Daemon(write_config(tmp_path, raw))
    async with MqttProbe(own_broker.host, own_broker.port, [f"{topics.base}/#"]) as probe:
        await daemon.start()
        await probe.wait_text(topics.availability("garage"), "online")
    try:
        own_broker.stop()  # SIGTERM: Mosquitto's own clean shutdown
        await until(
            lambda: any(e.get("event") == "mqtt_disconnected" for e in daemon.events()),
            "the disconnect logged",
        )
    finally:
        assert await daemon.end(signal.SIGTERM) == 0
    lost = next(e for e in daemon.events() if e["event"] == "mqtt_disconnected")
    assert lost["cause"].startswith("closed by the broker: it stopped or restarted"), lost
