"""The daemon's HTTP server: its address, its probes, its token, and hostile clients."""

from __future__ import annotations

import asyncio
import html
import json
import os
import resource
import signal
import socket
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import aiohttp
import pytest

from goe2mqtt.mqtt.topics import Topics
from goe2mqtt.sim.broker import MosquittoBroker
from goe2mqtt.sim.simulator import Simulator

from ..conftest import (
    SERIALS,
    TOKEN,
    WAIT,
    Daemon,
    MqttProbe,
    make_settings,
    password_broker,
    until,
    write_config,
)
from ..web import free_port, get, web_daemon

HTTP_TOKEN = "web-tok-9d2f61c0a7e4"
MQTT_USER = "goe"
MQTT_PASSWORD = "pw-mq-41b7e03c9a"


async def test_a_port_in_use_stops_start_up_with_one_line_naming_http_listen(
    broker: MosquittoBroker, simulator: Simulator, tmp_path: Path
) -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        raw = make_settings(broker, simulator)
        raw["http"] = {"listen": f"127.0.0.1:{port}"}
        daemon = Daemon(write_config(tmp_path, raw))
        await daemon.start()
        assert await daemon.wait() == 2
    lines = [line for line in daemon.stderr.decode().splitlines() if not line.startswith("{")]
    assert lines == [
        f"goe2mqtt: http.listen: cannot listen on 127.0.0.1:{port}: Address already in use"
        " (give another host:port, or http.enabled: false)"
    ]


async def test_an_address_not_on_this_machine_stops_start_up_too(
    broker: MosquittoBroker, simulator: Simulator, tmp_path: Path
) -> None:
    raw = make_settings(broker, simulator)
    raw["http"] = {"listen": "192.0.2.1:8099"}  # TEST-NET-1: no interface has it
    daemon = Daemon(write_config(tmp_path, raw))
    await daemon.start()
    assert await daemon.wait() == 2
    (line,) = [line for line in daemon.stderr.decode().splitlines() if not line.startswith("{")]
    assert line.startswith("goe2mqtt: http.listen: cannot listen on 192.0.2.1:8099: ")


async def http_healthcheck(config: Path, port: int) -> tuple[int | None, bytes]:
    """The image's HEALTHCHECK on this config, the listen address from the environment:
    its exit code and what it printed."""
    check = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "goe2mqtt", "healthcheck", "--http", "--config", str(config),
        stdout=asyncio.subprocess.PIPE,
        env={**os.environ, "GOE2MQTT_HTTP__LISTEN": f"127.0.0.1:{port}"},
    )  # fmt: skip
    out, _ = await check.communicate()
    return check.returncode, out


async def test_environment_variables_set_the_section(
    broker: MosquittoBroker, simulator: Simulator, tmp_path: Path
) -> None:
    port = free_port()
    raw = make_settings(broker, simulator)
    del raw["http"]
    daemon = Daemon(write_config(tmp_path, raw), env={"GOE2MQTT_HTTP__LISTEN": f"127.0.0.1:{port}"})
    await daemon.start()
    try:
        await until(lambda: any(e.get("event") == "http_listening" for e in daemon.events()))
        status, body, _ = await get(f"http://127.0.0.1:{port}/healthz")
        assert (status, json.loads(body)) == (200, {"status": "ok", "reasons": []})
        # The image's HEALTHCHECK: the same config (and variables) tell it where to ask.
        await until(lambda: any(e.get("event") == "mqtt_connected" for e in daemon.events()))
        healthy = await http_healthcheck(daemon.config, port)
        assert healthy == (0, b'healthy: {"status": "ok", "reasons": []}\n')
    finally:
        await daemon.end(signal.SIGTERM)
    code, out = await http_healthcheck(daemon.config, port)
    assert code == 1
    assert out.startswith(f"unhealthy: no answer from http://127.0.0.1:{port}/readyz".encode())
    off = Daemon(write_config(tmp_path, raw), env={"GOE2MQTT_HTTP__ENABLED": "false"})
    await off.start()
    try:
        await until(lambda: any(e.get("event") == "bridge_started" for e in off.events()))
        assert not any(e.get("event") == "http_listening" for e in off.events())
    finally:
        assert await off.end(signal.SIGTERM) == 0


async def test_readyz_follows_the_broker_and_healthz_does_not(
    own_broker: MosquittoBroker, simulator: Simulator, tmp_path: Path
) -> None:
    """Killed: 503 within 5 s; frozen (SIGSTOP): 503 within the keep-alive; back: 200."""
    keepalive = 5
    raw = make_settings(own_broker, simulator)
    raw["mqtt"]["keepalive"] = keepalive
    async with web_daemon(tmp_path, raw) as (_, url):

        async def answers(path: str) -> tuple[int, dict[str, object]]:
            status, body, headers = await get(url + path)
            assert headers["Content-Type"].startswith("application/json")
            assert body.endswith("\n")
            assert body.count("\n") == 1  # one line
            return status, json.loads(body)

        async def becomes(path: str, status: int, within: float) -> dict[str, object]:
            async with asyncio.timeout(within):
                while True:
                    got, body = await answers(path)
                    if got == status:
                        return body
                    await asyncio.sleep(0.1)

        assert await becomes("/readyz", 200, WAIT) == {"status": "ok", "reasons": []}
        own_broker.kill()
        failing = await becomes("/readyz", 503, 5.0)
        assert failing == {"status": "failing", "reasons": ["not connected to the MQTT broker"]}
        assert await answers("/healthz") == (200, {"status": "ok", "reasons": []})
        own_broker.start()
        await becomes("/readyz", 200, 2 * WAIT)
        own_broker.pause()
        try:
            await becomes("/readyz", 503, keepalive)
            assert (await answers("/healthz"))[0] == 200
        finally:
            own_broker.resume()
        await becomes("/readyz", 200, 2 * WAIT)


@pytest.fixture
def auth_broker(tmp_path: Path) -> Iterator[MosquittoBroker]:
    with password_broker(tmp_path, {MQTT_USER: MQTT_PASSWORD}) as running:
        yield running


async def test_the_token_guards_all_but_the_probes_and_nothing_served_holds_a_secret(
    auth_broker: MosquittoBroker, simulator: Simulator, tmp_path: Path
) -> None:
    raw = make_settings(auth_broker, simulator, chargers=("garage", "carport"))
    token_file = tmp_path / "http-token"
    token_file.write_text(HTTP_TOKEN + "\n")
    token_file.chmod(0o600)
    raw["http"]["token_file"] = str(token_file)
    raw["mqtt"].update(username=MQTT_USER, password=MQTT_PASSWORD)
    secrets = [HTTP_TOKEN, TOKEN, MQTT_PASSWORD]
    bearer = {"Authorization": f"Bearer {HTTP_TOKEN}"}
    async with web_daemon(tmp_path, raw) as (daemon, url):
        await until(lambda: any(e.get("event") == "mqtt_connected" for e in daemon.events()))
        served: list[str] = []
        for path in ("/healthz", "/readyz"):
            status, body, _ = await get(url + path)
            assert status in (200, 503)
            served.append(body)
        for path in ("/", "/metrics", "/charger/garage", "/events"):
            status, body, headers = await get(url + path)
            assert status == 401, path
            assert headers["WWW-Authenticate"].startswith("Bearer")
            served.append(body + json.dumps(headers))
            status, body, _ = await get(url + path, headers={"Authorization": "Bearer wrong"})
            assert status == 401, path
        for path in ("/", "/metrics", "/charger/garage", "/charger/carport", "/nowhere",
                     "/charger/nobody"):  # fmt: skip
            status, body, headers = await get(url + path, headers=bearer)
            assert status == (404 if "no" in path else 200), path
            served.append(body + json.dumps(headers))
        async with (
            aiohttp.ClientSession() as session,
            session.get(url + "/events", headers=bearer) as stream,
        ):
            await stream.content.readuntil(b"\n\n")  # retry:
            served.append((await stream.content.readuntil(b"\n\n")).decode())
        # In a browser: the token once in the URL, then an HttpOnly, SameSite=Strict cookie.
        status, _, headers = await get(url + f"/?token={HTTP_TOKEN}&page=1")
        assert status == 303
        assert headers["Location"] == "/?page=1"
        cookie = headers["Set-Cookie"]
        for flag in ("HttpOnly", "SameSite=Strict", "Path=/"):
            assert flag in cookie
        served.append(json.dumps(headers))  # the cookie is made from the token, not it
        name, value = cookie.split(";", 1)[0].split("=", 1)
        jar = {name: value}
        status, body, _ = await get(url + "/", cookies=jar)
        assert status == 200
        assert "garage" in body
        served.append(body)
    for text in served:
        for secret in secrets:
            assert secret not in text


async def test_hostile_http_gets_limits_and_4xx_and_never_delays_polls(
    broker: MosquittoBroker, simulator: Simulator, tmp_path: Path
) -> None:
    """1000 idle connections, slow clients, huge headers, unknown paths and traversal,
    while the garage charger is polled every 0.3 s: its poll gaps stay as they were."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    resource.setrlimit(resource.RLIMIT_NOFILE, (max(soft, min(hard, 4096)), hard))
    raw = make_settings(broker, simulator, scan_interval=0.3)
    polls: list[float] = []
    serial = SERIALS["garage"]

    def observe(seen: str, call: str) -> None:
        if seen == serial and call == "status":
            polls.append(time.monotonic())

    simulator.observers.append(observe)
    async with web_daemon(tmp_path, raw) as (daemon, url):
        await until(lambda: len(polls) >= 5, "polls")
        host, port = url.removeprefix("http://").rsplit(":", 1)
        idle: list[tuple[asyncio.StreamReader, asyncio.StreamWriter]] = []
        for _ in range(1000):
            idle.append(await asyncio.open_connection(host, int(port)))
        mark = len(polls)
        answers: dict[str, int] = {}

        async def raw_request(name: str, request: bytes) -> None:
            reader, writer = await asyncio.open_connection(host, int(port))
            writer.write(request)
            await writer.drain()
            line = await reader.readline()
            answers[name] = int(line.split()[1])
            writer.close()

        huge = b"X-Big: " + b"a" * 100_000 + b"\r\n"
        await raw_request("huge header", b"GET /healthz HTTP/1.1\r\nHost: x\r\n" + huge + b"\r\n")
        many = b"".join(b"X-H%d: 1\r\n" % i for i in range(500))
        await raw_request("many headers", b"GET /healthz HTTP/1.1\r\nHost: x\r\n" + many + b"\r\n")
        await raw_request("long line", b"GET /" + b"a" * 20_000 + b" HTTP/1.1\r\n\r\n")
        for name, path in (("unknown", "/wp-admin"), ("traversal", "/static/../../etc/passwd"),
                           ("encoded traversal", "/static/..%2f..%2fetc%2fpasswd"),
                           ("charger traversal", "/charger/..%2F..%2Fetc"),
                           ("body", "/metrics")):  # fmt: skip
            body = b"x" * 5000 if name == "body" else b""
            method = b"POST" if body else b"GET"
            await raw_request(name, method + b" " + path.encode() + b" HTTP/1.1\r\nHost: x\r\n"
                              + b"Content-Length: %d\r\n\r\n" % len(body) + body)  # fmt: skip
        # Slow clients: a request a byte at a time, from 20 clients at once.
        slow = [await asyncio.open_connection(host, int(port)) for _ in range(20)]
        for byte in b"GET /healthz HTTP/1.1\r\nHost: x\r\n":
            for _, writer in slow:
                writer.write(bytes([byte]))
            await asyncio.sleep(0.02)
        await until(lambda: len(polls) >= mark + 10, "polls meanwhile")
        status, body, _ = await get(url + "/healthz")  # still answers, with 1000 idle
        assert status == 200
        gaps = [b - a for a, b in zip(polls[mark - 1 :], polls[mark:], strict=False)]
        for _, writer in [*idle, *slow]:
            writer.close()
        assert daemon.running
    assert all(400 <= code < 500 for code in answers.values()), answers
    assert len(answers) == 8
    # Polls came as often as before (0.3 s; generous bound against a busy machine).
    assert max(gaps) < 1.5, gaps


async def test_a_chargers_page_lists_its_commands_newest_first(
    broker: MosquittoBroker, simulator: Simulator, tmp_path: Path
) -> None:
    raw = make_settings(broker, simulator)
    topics = Topics(raw["mqtt"]["base_topic"])
    async with (
        web_daemon(tmp_path, raw) as (_, url),
        MqttProbe(broker.host, broker.port, [f"{topics.base}/#"]) as probe,
    ):
        await probe.wait_text(topics.availability("garage"), "online")
        assert (await probe.command(topics.command("garage", "set_phase"), "1"))["ok"]
        # Refused at its turn (the range is the charger's): journaled, so on the page.
        # A payload that could never run is refused on arrival and never journaled.
        refused = await probe.command(topics.command("garage", "max_current"), "99")
        assert refused["ok"] is False
        status, body, _ = await get(url + "/charger/garage")
        front_status, front, _ = await get(url + "/")
    assert front_status == 200
    assert ">1 charger, page 1 of 1" in front  # "1 chargers" before
    assert status == 200
    history = body.split("<table id=history>", 1)[1].split("</table>", 1)[0]
    rows = [row.split("</tr>")[0] for row in history.split("<tbody>", 1)[1].split("<tr>")[1:]]
    cells = [[cell.split("</td>")[0] for cell in row.split("<td>")[1:]] for row in rows]
    assert [(c[1], c[3]) for c in cells] == [("max_current", "refused"), ("set_phase", "applied")]
    # published once the broker acknowledged the result (it may not have, yet)
    assert {c[2] for c in cells} <= {"done", "published"}
    assert cells[0][4] == html.escape(refused["error"])


async def test_an_ipv6_address_in_brackets(
    broker: MosquittoBroker, simulator: Simulator, tmp_path: Path
) -> None:
    raw = make_settings(broker, simulator)
    raw["http"] = {"listen": "[::1]:0"}
    async with web_daemon(tmp_path, raw) as (_, url):
        assert url.startswith("http://[::1]:")
        status, body, _ = await get(url + "/healthz")
        assert (status, json.loads(body)["status"]) == (200, "ok")
