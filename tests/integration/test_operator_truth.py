"""What a newcomer found on the operator's surface: probes that tell the truth while the
broker is frozen, a token check no odd byte turns into a 500, and no redirect away."""

from __future__ import annotations

import asyncio
import json
import signal
import sys
import time
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import pytest
import yaml
from aiohttp import web
from paho.mqtt.client import mqtt_ms_wait_for_puback

from goe2mqtt.bridge.health import check_health
from goe2mqtt.config.settings import parse_settings
from goe2mqtt.mqtt.client import MqttOptions
from goe2mqtt.mqtt.session_client import new_client
from goe2mqtt.sim.broker import MosquittoBroker
from goe2mqtt.sim.simulator import Faults, Simulator
from goe2mqtt.web import server

from ..conftest import (
    TOKEN,
    Daemon,
    RunningBridge,
    cancel,
    make_settings,
    until,
    until_health_file_connected,
)
from ..web import free_port, web_daemon
from .test_hostile import barrier, restarted_with_nothing_owed, results, running_daemon

HTTP_TOKEN = "web-tok-71c2e9a04b"


async def test_a_frozen_broker_stays_unanswered_after_our_keepalive_ping(
    own_broker: MosquittoBroker,
) -> None:
    """paho sets its "last bytes received" to now when it sends a PINGREQ: measured from
    there, a frozen broker looked as if it had just answered, and /readyz went back to
    200 for the rest of the keep-alive while the broker was still stopped."""
    client = new_client(
        MqttOptions(host=own_broker.host, port=own_broker.port, client_id="frozen", keepalive=2)
    )
    paho = client._client
    async with client:
        own_broker.pause()
        publish = asyncio.create_task(client.publish("frozen/x", b"1", qos=1))
        try:
            messages = paho._out_messages
            await until(
                lambda: any(m.state == mqtt_ms_wait_for_puback for m in messages.values()),
                "the publish waiting for its PUBACK",
            )
            (waiting,) = paho._out_messages.values()
            sent_at = waiting.timestamp
            # paho's keep-alive sends a PINGREQ once nothing came for 2 s; the broker
            # answers neither.
            await until(lambda: paho._ping_t > sent_at, "paho's PINGREQ")
            now = time.monotonic()
            assert client.unanswered_for(now) == now - sent_at
        finally:
            own_broker.resume()
            await cancel(publish)


async def _raw(url: str, request: bytes) -> tuple[int, bytes]:
    """One request written as bytes (what aiohttp's client would not send): its status
    and its head."""
    address = urlsplit(url)
    assert address.hostname is not None
    assert address.port is not None
    reader, writer = await asyncio.open_connection(address.hostname, address.port)
    try:
        writer.write(request)
        head = await reader.readuntil(b"\r\n\r\n")
    finally:
        writer.close()
    return int(head.split(b" ", 2)[1]), head


async def test_odd_bytes_in_the_token_are_a_401_and_a_redirect_stays_on_the_bridge(
    broker: MosquittoBroker, simulator: Simulator, tmp_path: Path
) -> None:
    """A header or cookie that is not UTF-8 was a 500 and an error in the log for every
    such request, from anyone; and "//host/?token=..." sent the browser to that host."""
    raw = make_settings(broker, simulator)
    token_file = tmp_path / "http-token"
    token_file.write_text(HTTP_TOKEN)
    token_file.chmod(0o600)
    raw["http"]["token_file"] = str(token_file)
    async with web_daemon(tmp_path / "run", raw) as (daemon, url):
        for header in (b"Authorization: Bearer \xff\xfe", b"Cookie: goe2mqtt_token=\xff"):
            status, head = await _raw(
                url, b"GET /metrics HTTP/1.1\r\nHost: x\r\n" + header + b"\r\n\r\n"
            )
            assert status == 401, head
        token = HTTP_TOKEN.encode()
        for target, location in (
            (b"//evil.example/?token=" + token, b"/evil.example/"),
            (b"/\\evil.example/?token=" + token, b"/evil.example/"),
            (b"/charger/garage?x=1&token=" + token, b"/charger/garage?x=1"),
        ):
            status, head = await _raw(url, b"GET " + target + b" HTTP/1.1\r\nHost: x\r\n\r\n")
            assert status == 303, head
            assert b"\r\nLocation: " + location + b"\r\n" in head, head
        events = daemon.events()
        assert not [e for e in events if e.get("level") == "error"], events
        for secret in (HTTP_TOKEN, TOKEN):
            assert secret not in daemon.stderr.decode()


async def test_healthcheck_reads_only_where_to_look_not_the_chargers_secrets(
    broker: MosquittoBroker, simulator: Simulator, tmp_path: Path
) -> None:
    """A monitor's shell has not the bridge's environment: `healthcheck --config` stopped
    with "environment variable GOE_TOKEN is not set" (exit 2), though the token is
    nothing a health check needs; so did an http.token_file it may not read."""
    raw = make_settings(broker, simulator)
    raw["health_file"] = str(tmp_path / "health.json")
    raw["http"] = {"listen": f"127.0.0.1:{free_port()}"}
    running = RunningBridge(parse_settings(raw))
    # The file the monitor reads: what README's example does, a token from a variable.
    raw["chargers"][0]["token"] = "${NEWCOMER_GOE_TOKEN}"
    raw["http"]["token_file"] = str(tmp_path / "not-readable-here")
    config = tmp_path / "config.yaml"
    config.write_text(yaml.safe_dump(raw))
    await running.start()
    try:
        health = tmp_path / "health.json"
        await until_health_file_connected(health)
        for extra in ((), ("--http",)):
            process = await asyncio.create_subprocess_exec(
                sys.executable, "-m", "goe2mqtt", "healthcheck", "--config", str(config),
                *extra, stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE,
                env={"PATH": "/usr/bin:/bin"},  # neither NEWCOMER_GOE_TOKEN nor GOE2MQTT_*
            )  # fmt: skip
            stdout, stderr = await process.communicate()
            assert (process.returncode, stderr.decode()) == (0, ""), extra
            assert stdout.decode().startswith("healthy: "), extra
    finally:
        await running.stop()


async def test_a_live_page_closed_ends_its_stream_without_an_error(
    broker: MosquittoBroker, simulator: Simulator, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Each closed status page (a tab closed, a reader gone) ended its stream with an
    exception aiohttp logged as an error, "Error handling request", with no reason."""
    ended: list[BaseException | None] = []
    make_app = server.make_app

    def recording_app(*args: object) -> web.Application:
        app = make_app(*args)  # type: ignore[arg-type]

        @web.middleware
        async def record(request: web.Request, handler: server.Handler) -> web.StreamResponse:
            try:
                response = await handler(request)
            except BaseException as exc:
                ended.append(exc)
                raise
            if request.path == "/events":
                ended.append(None)
            return response

        app.middlewares.append(record)
        return app

    servers: list[server.HttpServer] = []
    start = server.HttpServer.start

    async def started(self: server.HttpServer) -> None:
        await start(self)
        servers.append(self)

    monkeypatch.setattr(server, "make_app", recording_app)
    monkeypatch.setattr(server.HttpServer, "start", started)
    running = RunningBridge(parse_settings(make_settings(broker, simulator)))
    await running.start()
    try:
        await until(lambda: bool(servers), "the HTTP server listening")
        address = servers[0].address
        assert address is not None
        for count, path in enumerate(("/events", "/events?charger=garage"), start=1):
            reader, writer = await asyncio.open_connection(*address)
            writer.write(f"GET {path} HTTP/1.1\r\nHost: x\r\n\r\n".encode())
            await reader.readuntil(b"retry: 1000\n\n")
            writer.transport.abort()  # gone, as a closed tab's connection is
            await until(lambda: len(ended) == count, f"the stream of {path} ended")  # noqa: B023
        assert ended == [None, None]
    finally:
        await running.stop()


# JSON's escapes make lone UTF-16 surrogates, which no UTF-8 holds: an id echoed in the
# result stopped the bridge ("surrogates not allowed"), and again at every restart, from
# the result the journal owed.
LONE_SURROGATES = [
    ("stop_charging", '{"id": "\\ud800"}'),
    ("set", '{"trx": "\\udc00", "id": "s2"}'),
    ("transaction", '"\\ud800"'),
    ("next_trip_time", '"x\\udfff"'),
]


async def test_a_lone_surrogate_in_a_command_is_refused_and_the_bridge_serves_on(
    broker: MosquittoBroker, simulator: Simulator, tmp_path: Path
) -> None:
    garage = simulator.charger("012345")
    async with running_daemon(broker, simulator, tmp_path) as (daemon, probe, topics):
        mark = probe.mark()
        for service, payload in LONE_SURROGATES:
            await probe.publish(topics.command("garage", service), payload)
        await probe.publish(topics.command("garage", "stop_charging"), '{"id": "\\ud800"}',
                            retain=True)  # fmt: skip
        await barrier(probe, topics, "after")
        answered = results(probe, topics, mark)
        assert len(answered) == len(LONE_SURROGATES) + 2, answered  # each once
        for result in answered[: len(LONE_SURROGATES)]:
            assert result["ok"] is False, result
            assert "lone surrogate" in result["error"], result
        assert answered[-2]["ok"] is False
        assert "retained command ignored" in answered[-2]["error"]
        assert garage.set_calls == [{"psm": 0}]  # only the barrier reached the charger
        await probe.publish(topics.command("garage", "stop_charging"), b"", retain=True)
        await restarted_with_nothing_owed(daemon, probe, topics)


async def test_the_health_file_tells_a_frozen_broker_as_readyz_does(
    own_broker: MosquittoBroker, simulator: Simulator, tmp_path: Path
) -> None:
    """A frozen broker keeps its TCP connection: the health file said "connected" and
    `healthcheck` healthy for up to 1.25 keep-alives, while /readyz already said 503."""
    raw = make_settings(own_broker, simulator)
    raw["mqtt"]["keepalive"] = 10
    health = tmp_path / "health.json"
    raw["health_file"] = str(health)
    running = RunningBridge(parse_settings(raw))
    await running.start()
    try:
        await until_health_file_connected(health)
        assert check_health(health)[0]
        own_broker.pause()
        try:
            seen = tmp_path / "seen.json"  # the very file judged: the next may say more

            def frozen_told() -> bool:
                text = health.read_text()
                said = json.loads(text)
                seen.write_text(text)
                return bool(said["mqtt_connected"]) and said.get("mqtt_unanswered", 0) > 5

            await until(frozen_told, "the health file telling the broker's silence")
            healthy, why = check_health(seen)
            assert not healthy
            assert why.startswith("the MQTT broker has not answered for ")
        finally:
            own_broker.resume()
    finally:
        await running.stop()


async def test_a_command_cut_off_by_kill_9_counts_as_failed_in_bridge_info(
    broker: MosquittoBroker, simulator: Simulator, tmp_path: Path
) -> None:
    """Its result says "outcome unknown" and /metrics counted it, but bridge/info's
    per-charger and total "failed" stayed 0: the Home Assistant device missed it."""
    garage = simulator.charger("012345")
    async with running_daemon(broker, simulator, tmp_path, scan_interval=60) as (
        daemon,
        probe,
        topics,
    ):
        garage.faults = Faults(delay=0.6, only="set")
        await probe.publish(topics.command("garage", "change_charging_power"),
                            '{"charging_power": 9, "id": "cut"}')  # fmt: skip
        await until(lambda: garage.set_requests >= 1, "the set under way")
        await daemon.end(signal.SIGKILL)
        garage.faults = Faults()
        await until(lambda: len(garage.set_calls) >= 1, "the set on its way landed")
        again = Daemon(daemon.config)
        await again.start()
        try:
            found = await probe.wait_for(topics.result("garage"))
            assert found.json()["error"].startswith("outcome unknown"), found.json()

            def counted(message: Any) -> bool:
                info = message.json()
                return bool(info["commands"]["failed"] == 1)

            info = (await probe.wait_for(topics.bridge_info, counted)).json()
            assert info["chargers"]["garage"]["commands"] == {"ok": 0, "rejected": 0, "failed": 1}
        finally:
            assert await again.end(signal.SIGTERM) == 0
