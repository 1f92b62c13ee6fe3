"""The health file and `goe2mqtt healthcheck`, as a container HEALTHCHECK uses them."""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import subprocess
import sys
from pathlib import Path

import aiohttp
import pytest

from goe2mqtt.bridge.health import check_health, write_health_file
from goe2mqtt.config.settings import parse_settings
from goe2mqtt.sim.broker import MosquittoBroker
from goe2mqtt.sim.simulator import Faults, Simulator

from ..conftest import WAIT, RunningBridge, make_settings, until
from ..web import free_port


def health(connected: bool = True, **chargers: bool) -> dict[str, object]:
    return {
        "mqtt_connected": connected,
        "chargers": {name: {"online": online} for name, online in chargers.items()},
    }


def test_a_large_fleet_is_judged_by_its_counts(tmp_path: Path) -> None:
    """Beyond 100 chargers bridge/info lists only the ones needing a look."""
    path = tmp_path / "health.json"
    listed = {f"c{i:02d}": {"online": False} for i in range(12)}
    listed["c99"] = {"online": True, "consecutive_failures": 1}
    write_health_file(
        path,
        {"mqtt_connected": True, "chargers": listed, "chargers_shown": "needing_attention",
         "chargers_total": 5000, "chargers_online": 4980},
    )  # fmt: skip
    healthy, why = check_health(path)
    named = ", ".join(f"c{i:02d}" for i in range(10))
    assert (healthy, why) == (True, f"4980/5000 chargers online (offline: {named} and 10 more)")


def test_healthy_means_fresh_and_connected(tmp_path: Path) -> None:
    path = tmp_path / "health.json"
    assert check_health(path) == (False, check_health(path)[1])
    assert "no health file" in check_health(path)[1]
    write_health_file(path, health(garage=True, carport=False))
    now = path.stat().st_mtime
    assert check_health(path, now=now + 10) == (True, "1/2 chargers online (offline: carport)")
    assert check_health(path, now=now + 91) == (
        False,
        "health file is 91 s old: the bridge is stuck or gone",
    )
    write_health_file(path, health(connected=False, garage=True))
    assert check_health(path) == (False, "not connected to the MQTT broker")
    path.write_text("{half")
    assert not check_health(path)[0]
    assert not (tmp_path / "health.json.partial").exists()


def test_a_health_file_from_the_future_says_unhealthy(tmp_path: Path) -> None:
    """The clock stepped back an hour (NTP after a boot without RTC, a VM restored) and
    the bridge stuck: its last file is an hour ahead, and "age" -3600 s passed as fresh
    for that hour. A live bridge writes it again within its info interval, so a stamp
    ahead of the clock is unhealthy for one look at most."""
    path = tmp_path / "health.json"
    write_health_file(path, health(garage=True))
    now = path.stat().st_mtime
    assert check_health(path, now=now - 5)[0]  # a file system's own rounding
    assert check_health(path, now=now - 3600) == (
        False,
        "health file is dated 3600 s ahead of this clock: the clock stepped back, and"
        " the bridge has not written it since",
    )


def test_a_health_file_that_is_not_the_bridges_is_a_verdict_not_a_traceback(
    tmp_path: Path,
) -> None:
    """JSON, but not what the bridge writes (a list, null, chargers as a list): an
    AttributeError's traceback and exit 1, not the one line a HEALTHCHECK logs."""
    path = tmp_path / "health.json"
    for text in ("[]", "null", '{"mqtt_connected": true, "chargers": [1]}'):
        path.write_text(text)
        healthy, why = check_health(path)
        assert not healthy
        assert why.startswith("not the bridge's health file"), why


async def test_the_running_bridge_keeps_the_health_file_fresh(
    broker: MosquittoBroker, simulator: Simulator, tmp_path: Path
) -> None:
    path = tmp_path / "health.json"
    raw = make_settings(broker, simulator, chargers=("garage", "carport"))
    raw["health_file"] = str(path)
    simulator.charger("067890").faults = Faults(http_status=403)
    running = RunningBridge(parse_settings(raw), info_interval=0.2)
    await running.start()
    try:

        def garage_online() -> bool:
            try:
                info = json.loads(path.read_text())
            except (OSError, ValueError):
                return False
            return bool(info["mqtt_connected"] and info["chargers"]["garage"]["online"])

        await until(garage_online, "a health file with garage online")
        command = [sys.executable, "-m", "goe2mqtt", "healthcheck", "--file", str(path)]
        done = await asyncio.to_thread(
            subprocess.run, command, capture_output=True, text=True, timeout=60, check=False
        )
        assert done.returncode == 0, done.stdout + done.stderr
        assert done.stdout.strip() == "healthy: 1/2 chargers online (offline: carport)"
    finally:
        await running.stop()
    os.utime(path, (0, 0))  # as if the bridge had hung long ago
    env = {**os.environ, "GOE2MQTT_HEALTH_FILE": str(path)}
    done = await asyncio.to_thread(
        subprocess.run,
        [sys.executable, "-m", "goe2mqtt", "healthcheck"],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
        env=env,
    )
    assert done.returncode == 1
    assert done.stdout.startswith("unhealthy: health file is")


async def test_a_clean_stop_leaves_a_health_file_that_says_so(
    broker: MosquittoBroker, simulator: Simulator, tmp_path: Path
) -> None:
    """The README's newcomer stopped the bridge (SIGTERM) and ran `goe2mqtt healthcheck`:
    "healthy: 1/1 chargers online", exit 0 - the last file said MQTT connected and stayed
    fresh for max_age (90 s) after the bridge was gone. A clean stop writes it once more."""
    path = tmp_path / "health.json"
    raw = make_settings(broker, simulator, chargers=("garage",))
    raw["health_file"] = str(path)
    running = RunningBridge(parse_settings(raw))
    await running.start()
    try:
        await until(lambda: check_health(path)[0], "a healthy health file")
    finally:
        await running.stop()
    command = [sys.executable, "-m", "goe2mqtt", "healthcheck", "--file", str(path)]
    done = await asyncio.to_thread(
        subprocess.run, command, capture_output=True, text=True, timeout=60, check=False
    )
    assert done.returncode == 1, done.stdout + done.stderr
    assert done.stdout.startswith("unhealthy: the bridge stopped at "), done.stdout
    assert json.loads(path.read_text())["mqtt_connected"] is False


async def test_the_health_file_follows_the_broker_connection_at_once(
    own_broker: MosquittoBroker, simulator: Simulator, tmp_path: Path
) -> None:
    # With the default 30 s interval a check soon after start, or soon after the broker
    # went away, must already see the connection as it is.
    path = tmp_path / "health.json"
    raw = make_settings(own_broker, simulator, chargers=("garage",))
    raw["health_file"] = str(path)
    running = RunningBridge(parse_settings(raw))
    await running.start()

    def connected() -> bool | None:
        try:
            return bool(json.loads(path.read_text())["mqtt_connected"])
        except (OSError, ValueError, KeyError):
            return None

    try:
        await until(lambda: connected() is True, "a health file saying connected")
        own_broker.kill()
        await until(lambda: connected() is False, "a health file saying disconnected")
        assert check_health(path) == (False, "not connected to the MQTT broker")
        own_broker.start()
        await until(lambda: connected() is True, "a health file saying connected again")
    finally:
        await running.stop()


async def test_the_health_file_tells_the_first_polls_without_waiting_an_interval(
    broker: MosquittoBroker, simulator: Simulator, tmp_path: Path
) -> None:
    """The file written at connect, before the chargers answered, said 'healthy: 0/1
    chargers online (offline: garage)' until the next info, 15 s later by default (here
    15 minutes: keepalive 3600), while garage/availability already said online."""
    path = tmp_path / "health.json"
    simulator.charger("012345").faults = Faults(delay=0.3)  # the connect comes first
    raw = make_settings(broker, simulator, chargers=("garage",))
    raw["health_file"] = str(path)
    raw["mqtt"]["keepalive"] = 3600
    running = RunningBridge(parse_settings(raw))
    await running.start()

    def online() -> int | None:
        try:
            return int(json.loads(path.read_text())["chargers_online"])
        except (OSError, ValueError, KeyError):
            return None

    try:
        await until(lambda: online() == 1, "a health file with the charger online")
        assert check_health(path) == (True, "1/1 chargers online")
    finally:
        await running.stop()


@pytest.mark.parametrize(
    ("http", "reason", "detail"),
    [
        ("{enabled: false}", "http.enabled is false", "no /readyz to ask"),
        (
            '{listen: "127.0.0.1:0"}',
            "http.listen is 127.0.0.1:0, port 0",
            "the HTTP check needs a fixed port",
        ),
    ],
    ids=["http-off", "port-0"],
)
def test_healthcheck_http_with_no_fixed_probe_reads_the_health_file(
    tmp_path: Path, http: str, reason: str, detail: str
) -> None:
    """The image's HEALTHCHECK asks /readyz; a config with http.enabled false serves none,
    and one with port 0 serves it at a port nobody knows. Asking anyway said 'no answer ...
    Connection refused' (or asked whatever else listens there): the health file the image
    sets is judged instead, or the reason said."""
    path = tmp_path / "health.json"
    config = tmp_path / "config.yaml"
    config.write_text(
        "mqtt: {host: 127.0.0.1}\nchargers: [{name: garage, host: 127.0.0.1:80}]\n"
        f"http: {http}\n"
    )
    command = [sys.executable, "-m", "goe2mqtt", "healthcheck", "--http", "--config", str(config)]
    env = {k: v for k, v in os.environ.items() if not k.startswith("GOE2MQTT_")}
    done = subprocess.run(command, capture_output=True, text=True, timeout=60, check=False, env=env)
    assert done.returncode == 1, done.stdout + done.stderr
    assert done.stdout.startswith(f"unhealthy: {reason}: {detail}"), done.stdout
    write_health_file(path, health(garage=True))
    env["GOE2MQTT_HEALTH_FILE"] = str(path)  # as the image sets it
    done = subprocess.run(command, capture_output=True, text=True, timeout=60, check=False, env=env)
    assert done.returncode == 0, done.stdout + done.stderr
    assert done.stdout.strip() == "healthy: 1/1 chargers online"
    assert f"{reason}: the health file instead" in done.stderr


async def test_healthcheck_http_asks_the_bridge_itself_not_a_proxy(
    broker: MosquittoBroker, simulator: Simulator, tmp_path: Path
) -> None:
    """urllib takes http_proxy from the environment (a corporate Docker host sets it in
    every container): `healthcheck --http` asked the proxy for 127.0.0.1:PORT/readyz -
    the proxy's own loopback, or none - and a healthy bridge was "unhealthy", restarted
    by its supervisor again and again."""
    raw = make_settings(broker, simulator)
    port = free_port()
    raw["http"] = {"listen": f"127.0.0.1:{port}"}
    config = tmp_path / "config.yaml"
    config.write_text(json.dumps(raw))
    running = RunningBridge(parse_settings(raw))
    await running.start()
    try:

        async def readyz() -> tuple[int | None, str]:
            process = await asyncio.create_subprocess_exec(
                sys.executable, "-m", "goe2mqtt", "healthcheck", "--config", str(config),
                "--http", stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE,
                env={"PATH": "/usr/bin:/bin", "PYTHONPATH": os.environ.get("PYTHONPATH", ""),
                     "http_proxy": "http://127.0.0.1:9", "HTTP_PROXY": "http://127.0.0.1:9"},
            )  # fmt: skip
            stdout, _ = await process.communicate()
            return process.returncode, stdout.decode()

        async with asyncio.timeout(WAIT), aiohttp.ClientSession() as session:
            while True:  # ready, asked without a proxy (a liveness bound)
                with contextlib.suppress(aiohttp.ClientConnectionError):
                    async with session.get(f"http://127.0.0.1:{port}/readyz") as answer:
                        if answer.status == 200:
                            break
                await asyncio.sleep(0.1)
        code, said = await readyz()
        assert (code, said.split(":")[0]) == (0, "healthy"), said
    finally:
        await running.stop()
