"""The commands a newcomer runs first: the demo and the standalone simulator."""

from __future__ import annotations

import asyncio
import io
import json
import signal
import sys

import aiohttp
import pytest

from goe2mqtt.broker import free_port
from goe2mqtt.demo import BrokerKind, run_demo

from .conftest import WAIT


@pytest.mark.parametrize(
    ("kind", "banner"),
    [("amqtt", "started an embedded MQTT broker (amqtt)"), ("mosquitto", "a private Mosquitto")],
)
async def test_demo_shows_discovery_states_a_command_and_its_result(
    kind: BrokerKind, banner: str
) -> None:
    out = io.StringIO()
    await run_demo(mqtt_host=None, mqtt_port=0, duration=7, out=out, pace=0.15, broker_kind=kind)
    text = out.getvalue()
    lines = text.splitlines()
    base = "goe2mqtt-demo"
    assert banner in text
    assert any(
        line.startswith(f"goe2mqtt-demo-ha/sensor/{base}/garage_car_status/config")
        for line in lines
    )
    assert any(line.split() == [f"{base}/garage/availability", "online"] for line in lines)
    assert any(line.split() == [f"{base}/garage/car_status", "charging"] for line in lines)
    results = [
        json.loads(line.split(maxsplit=1)[1])
        for line in lines
        if line.startswith(f"{base}/garage/cmd/result") and line.endswith("}")  # not cut short
    ]
    assert {"service": "wallbox_control", "ok": True, "applied": [{"trx": 0}]} in results
    assert any(r.get("id") == "demo-1" and r["ok"] for r in results)
    assert "--- try it yourself" in text
    port = text.split(" on 127.0.0.1:", 1)[1].split()[0]
    assert f"mosquitto_sub -h 127.0.0.1 -p {port} -t '{base}/#' -v" in text
    assert lines[-1].split() == [f"{base}/bridge/availability", "offline"]
    assert not any(line.startswith(("goe2mqtt/", "homeassistant/")) for line in lines)


async def test_simulate_serves_the_api_until_sigterm() -> None:
    port = free_port()
    process = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "goe2mqtt",
        "simulate",
        "--port",
        str(port),
        "--charger",
        "000042:secret-sim",
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )
    try:
        assert process.stdout is not None
        line = (await asyncio.wait_for(process.stdout.readline(), WAIT)).decode()
        assert line.strip() == f"charger 000042: api_url http://127.0.0.1:{port}/000042"
        url = f"http://127.0.0.1:{port}/000042/api/status"
        async with aiohttp.ClientSession() as http:
            async with http.get(url, params={"filter": "sse", "token": "secret-sim"}) as answer:
                assert await answer.json() == {"sse": "000042"}
            async with http.get(url, params={"token": "wrong"}) as answer:
                assert answer.status == 401
        process.send_signal(signal.SIGTERM)
        assert await asyncio.wait_for(process.wait(), WAIT) == 0
    finally:
        if process.returncode is None:
            process.kill()
            await process.wait()


async def test_the_demo_takes_its_port_and_ends_on_sigterm_like_ctrl_c() -> None:
    port = free_port()
    process = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "goe2mqtt", "demo", "--broker", "amqtt", "--mqtt-port", str(port),
        stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE,
    )  # fmt: skip
    assert process.stdout is not None
    try:
        first = await asyncio.wait_for(process.stdout.readline(), WAIT)
        assert f"embedded MQTT broker (amqtt) on 127.0.0.1:{port}" in first.decode()
        while b"goe2mqtt-demo/garage/availability" not in await process.stdout.readline():
            pass  # running: the bridge has published
        process.send_signal(signal.SIGTERM)
        rest, stderr = await asyncio.wait_for(process.communicate(), 3 * WAIT)
    finally:
        if process.returncode is None:
            process.kill()
            await process.wait()
    assert process.returncode == 0, stderr.decode()
    assert rest.decode().splitlines()[-1].split() == [
        "goe2mqtt-demo/bridge/availability",
        "offline",
    ]
