"""The daemon as users run it: broker restarts, SIGTERM, and secrets that never leak."""

from __future__ import annotations

import asyncio
import json
import os
import signal
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest
import yaml

from goe2mqtt.catalogue import ENTITIES
from goe2mqtt.config.settings import parse_settings
from goe2mqtt.homeassistant.discovery import discovery_topic
from goe2mqtt.mqtt.topics import Topics
from goe2mqtt.sim.broker import MosquittoBroker
from goe2mqtt.sim.simulator import Simulator

from ..conftest import (
    PROCESS_WAIT,
    MqttProbe,
    RunningBridge,
    make_settings,
    password_broker,
    until,
)

USER = "goe"
PASSWORD = "pw-7c1e0b9d44aa"
WRONG_TOKEN = "tok-wrong-51f0e2c9"


async def test_bridge_survives_a_broker_crash_and_republishes_everything(
    own_broker: MosquittoBroker, simulator: Simulator
) -> None:
    settings = parse_settings(make_settings(own_broker, simulator))
    topics = Topics(settings.mqtt.base_topic)
    prefix = settings.mqtt.discovery_prefix
    subscriptions = [f"{topics.base}/#", f"{prefix}/#"]
    running = RunningBridge(settings)
    await running.start()
    try:
        async with MqttProbe(own_broker.host, own_broker.port, subscriptions) as probe:
            await probe.wait_text(topics.availability("garage"), "online")
        own_broker.kill()  # SIGKILL, no persistence: every retained message is gone
        await until(lambda: not running.bridge.mqtt.connected, "bridge noticing the broker")
        # The charger changes while the broker is away; the bridge keeps polling.
        simulator.charger("012345").plug_in()
        await asyncio.sleep(0.5)
        own_broker.start()
        async with MqttProbe(own_broker.host, own_broker.port, subscriptions) as probe:
            await probe.wait_text(topics.bridge_availability, "online")
            await probe.wait_text(topics.availability("garage"), "online")
            await probe.wait_text(topics.state("garage", "car_status"), "charging")
            config_topics = [discovery_topic(prefix, topics.base, "garage", e) for e in ENTITIES]
            for topic in config_topics:
                await probe.wait_for(topic)
            # Commands work again on the new connection.
            result = await probe.command(topics.command("garage", "stop_charging"), "")
            assert result["ok"] is True
        async with MqttProbe(own_broker.host, own_broker.port, subscriptions) as late:
            # What the bridge republished is retained again on the new broker.
            for topic in [*config_topics, topics.state("garage", "car_status")]:
                assert (await late.wait_for(topic)).retain, topic
            # Every state topic and the JSON state, built from the charger's view (the
            # bridge holds no copy of their payloads): none missing, none empty.
            view = running.bridge.chargers["garage"].view
            assert len(view.states) > 100
            for key in view.states:
                message = await late.wait_for(topics.state("garage", key))
                assert message.retain, key
                assert message.payload, key
            state = json.loads((await late.wait_for(topics.json_state("garage"))).payload)
            assert set(state) == set(view.states)
        assert running.bridge.mqtt.connections == 2
    finally:
        await running.stop()


@pytest.fixture
def auth_broker(tmp_path: Path) -> Iterator[MosquittoBroker]:
    """A broker that wants a user name and password, as a real installation does."""
    with password_broker(tmp_path, {USER: PASSWORD}) as running:
        yield running


async def test_daemon_process_stops_cleanly_on_sigterm_and_never_leaks_secrets(
    auth_broker: MosquittoBroker, simulator: Simulator, tmp_path: Path
) -> None:
    """A whole session with distinctive secrets: none in any log line or MQTT message."""
    broker = auth_broker
    raw = make_settings(broker, simulator, chargers=("garage", "carport"))
    token_file, password_file = tmp_path / "token", tmp_path / "password"
    token_file.write_text(raw["chargers"][0].pop("token"))
    token_file.chmod(0o600)
    password_file.write_text(PASSWORD)
    password_file.chmod(0o600)
    raw["chargers"][0]["token_file"] = str(token_file)
    raw["mqtt"].update(username=USER, password_file=str(password_file))
    raw["chargers"][1]["token"] = "${CARPORT_TOKEN}"  # the cloud refuses it: error paths log
    config = tmp_path / "config.yaml"
    config.write_text(yaml.safe_dump(raw))
    topics = Topics(raw["mqtt"]["base_topic"])
    secrets = [token_file.read_text(), WRONG_TOKEN, PASSWORD]
    credentials = {"username": USER, "password": PASSWORD}

    process = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "goe2mqtt", "--config", str(config),
        "--log-level", "debug", "--log-format", "json",
        stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE,
        env={**os.environ, "CARPORT_TOKEN": WRONG_TOKEN},
    )  # fmt: skip
    seen: list[bytes] = []
    try:
        async with MqttProbe(broker.host, broker.port, ["#"], **credentials) as probe:
            await probe.wait_text(topics.availability("garage"), "online")
            await probe.wait_text(topics.bridge_availability, "online")
            assert (await probe.command(topics.command("garage", "set_phase"), "1"))["ok"]
            assert not (await probe.command(topics.command("carport", "set_phase"), "1"))["ok"]
            bad = await probe.command(topics.command("garage", "set_phase"), "{bad")
            assert bad["error"] == "payload is not valid JSON"
            seen += [m.topic.encode() + m.payload for m in probe.messages]
        broker.kill()  # reconnect paths log too
        broker.start()
        async with MqttProbe(broker.host, broker.port, ["#"], **credentials) as probe:
            await probe.wait_text(topics.availability("garage"), "online")
            assert (await probe.command(topics.command("garage", "set_phase"), "0"))["ok"]
            mark = probe.mark()
            process.send_signal(signal.SIGTERM)
            stdout, stderr = await asyncio.wait_for(process.communicate(), PROCESS_WAIT)
            assert process.returncode == 0, stderr.decode()
            await probe.wait_text(topics.bridge_availability, "offline", since=mark)
            await probe.wait_text(topics.availability("garage"), "offline", since=mark)
            seen += [m.topic.encode() + m.payload for m in probe.messages]
    finally:
        if process.returncode is None:
            process.kill()
            await process.wait()

    log_lines = stderr.decode().splitlines()
    events = [json.loads(line) for line in log_lines]  # every line is one JSON event
    names = {event["event"] for event in events}
    assert {
        "bridge_started",
        "mqtt_connected",
        "mqtt_disconnected",
        "charger_online",
        "command_done",
        "command_rejected",
        "poll_failed",
        "bridge_stopped",
    } <= names
    assert any("token rejected" in str(e.get("reason")) for e in events)
    assert "Traceback" not in stderr.decode()
    everything = stdout + stderr + b"".join(seen)
    assert len(seen) > 50
    for secret in secrets:
        assert secret.encode() not in everything, "a secret leaked"
