"""TLS to the broker, and only well-formed commands under our own topics are acted on."""

from __future__ import annotations

import asyncio
import ssl
from collections.abc import Iterator
from pathlib import Path

import pytest
import structlog

from goe2mqtt.config.settings import parse_settings
from goe2mqtt.mqtt.topics import Topics
from goe2mqtt.sim.broker import MosquittoBroker
from goe2mqtt.sim.simulator import Simulator

from ..certs import Certificates, make_certificates, mosquitto_tls
from ..conftest import MqttProbe, RunningBridge, Setup, make_settings, until


@pytest.fixture
def certificates(tmp_path: Path) -> Certificates:
    return make_certificates(tmp_path)


@pytest.fixture
def tls_broker(certificates: Certificates) -> Iterator[MosquittoBroker]:
    with MosquittoBroker(extra_config=mosquitto_tls(certificates)) as running:
        yield running


async def test_bridge_speaks_tls_to_a_broker_it_trusts(
    tls_broker: MosquittoBroker, simulator: Simulator, certificates: Certificates
) -> None:
    raw = make_settings(tls_broker, simulator)
    raw["mqtt"]["tls"] = {"ca_file": str(certificates.ca)}
    settings = parse_settings(raw)
    topics = Topics(settings.mqtt.base_topic)
    trusted = ssl.create_default_context(cafile=certificates.ca)
    async with MqttProbe(
        tls_broker.host, tls_broker.port, [f"{topics.base}/#"], tls_context=trusted
    ) as probe:
        running = RunningBridge(settings)
        await running.start()
        try:
            await probe.wait_text(topics.availability("garage"), "online")
            result = await probe.command(topics.command("garage", "set_phase"), "1")
            assert result["ok"] is True
        finally:
            await running.stop()


async def test_a_broker_certificate_from_another_ca_is_refused_with_a_clear_error(
    tls_broker: MosquittoBroker, simulator: Simulator, certificates: Certificates
) -> None:
    raw = make_settings(tls_broker, simulator)
    raw["mqtt"]["tls"] = {"ca_file": str(certificates.other_ca)}
    running = RunningBridge(parse_settings(raw))
    with structlog.testing.capture_logs() as logs:
        await running.start()
        try:
            await until(lambda: any(e["event"] == "mqtt_tls_failed" for e in logs), "tls error")
        finally:
            await running.stop()
    failure = next(e for e in logs if e["event"] == "mqtt_tls_failed")
    assert "certificate verify failed" in failure["error"]
    assert "mqtt.tls" in failure["hint"]
    assert running.bridge.mqtt.connections == 0


async def test_plain_tcp_to_a_tls_listener_never_counts_as_connected(
    tls_broker: MosquittoBroker, simulator: Simulator
) -> None:
    running = RunningBridge(parse_settings(make_settings(tls_broker, simulator)))
    with structlog.testing.capture_logs() as logs:
        await running.start()
        try:
            # The listener resets the connection; the client only gives up at its
            # 10 s connect timeout.
            await until(
                lambda: any(e["event"] == "mqtt_connect_failed" for e in logs),
                "failure",
                within=30,
            )
        finally:
            await running.stop()
    assert running.bridge.mqtt.connections == 0


async def test_only_well_formed_command_topics_are_acted_on(
    setup: Setup, probe: MqttProbe, bridge: RunningBridge
) -> None:
    garage = setup.charger("garage")
    base = setup.topics.base
    for topic in [
        f"{base}/garage/cmd/stop_charging/extra",
        f"{base}/garage/command/stop_charging",
        f"{base}/garage/cmd",
        f"{base}x/garage/cmd/stop_charging",
        f"other/{base}/garage/cmd/stop_charging",
    ]:
        await probe.publish(topic, "")
    # Values are validated and JSON-encoded by the catalogue, never pasted into a URL.
    for topic, payload in [
        (setup.cmd("garage", "set_phase"), '{"phase": "1&amp=32"}'),
        (setup.cmd("garage", "change_charging_power"), '"10&frc=2"'),
        (setup.cmd("garage", "stop_charging"), '{"frc": 2}'),
        (setup.cmd("garage", "set_transaction"), '{"status": "0?token=x"}'),
    ]:
        result = await probe.command(topic, payload)
        assert result["ok"] is False, payload
    marker = await probe.command(setup.cmd("garage", "set_phase"), '{"phase": 2, "id": "end"}')
    assert marker["ok"] is True
    await asyncio.sleep(0.2)
    assert garage.set_calls == [{"psm": 2}]
    results = probe.since(0, setup.topics.result("garage"))
    assert len(results) == 5  # the four refusals and the marker: nothing for the odd topics
