"""What the daemon loads is what its configuration uses (issue 32): `python -m goe2mqtt`
as users run it, its modules listed as it exits."""

from __future__ import annotations

import asyncio
import json
import signal
import sys
from pathlib import Path
from typing import Any

import pytest
import yaml

from goe2mqtt.sim.broker import MosquittoBroker
from goe2mqtt.sim.simulator import Simulator

from ..conftest import PROCESS_WAIT, WAIT, make_settings

# `python -m goe2mqtt ARGS`, and at its exit every module it had imported, to a file;
# and "mimetypes._db" if the system's MIME table was read (goe2mqtt/web/__init__.py).
MODULES_AT_EXIT = """\
import atexit, runpy, sys
out = sys.argv.pop(1)
def table_read():
    return getattr(sys.modules.get("mimetypes"), "_db", None) is not None
atexit.register(lambda: open(out, "w").write(
    "\\n".join(sorted(sys.modules) + ["mimetypes._db"] * table_read())))
runpy.run_module("goe2mqtt", run_name="__main__", alter_sys=True)
"""

# Never in a daemon whose chargers are polled: the simulator and the demo, the websocket
# (its protocol, bcrypt), chargers on their own MQTT, the sites, the session reports, and
# what structlog would draw tracebacks with. prometheus_client waits for a first scrape.
# Nor the system's MIME table, which aiohttp's web would read (mimetypes._db: read), nor
# ctypes, for a malloc_trim that one charger is too small to need (bridge/memory.py).
# Nor pydantic: config/schema validates the file (pydantic's first model alone was 5.5 MiB).
NOT_FOR_POLLING = {
    "goe2mqtt.sim", "goe2mqtt.sim.demo", "goe2mqtt.sim.house_demo", "goe2mqtt.sim.simulator",
    "goe2mqtt.goe.websocket", "goe2mqtt.goe.ws_protocol", "goe2mqtt.goe.ws_transport",
    "goe2mqtt.goe.charger_mqtt", "bcrypt",
    "goe2mqtt.site", "goe2mqtt.site.controller", "goe2mqtt.bridge.site_runner",
    "goe2mqtt.ledger.report", "goe2mqtt.web.metrics", "prometheus_client",
    "rich", "greenlet", "better_exceptions", "difflib", "mimetypes._db", "ctypes",
    "pydantic", "pydantic_core",
}  # fmt: skip
POLLING = {"goe2mqtt.goe.client", "goe2mqtt.bridge.process", "goe2mqtt.catalogue"}


async def modules_of_daemon(
    raw: dict[str, Any], tmp_path: Path, until_event: str, log_level: str = "info"
) -> set[str]:
    """Run the daemon on this config until it logs until_event, stop it (SIGTERM), and
    return the modules it had imported."""
    config, listed = tmp_path / "config.yaml", tmp_path / "modules.txt"
    config.write_text(yaml.safe_dump(raw))
    process = await asyncio.create_subprocess_exec(
        sys.executable, "-c", MODULES_AT_EXIT, str(listed), "--config", str(config),
        "--log-level", log_level, "--log-format", "json",
        stderr=asyncio.subprocess.PIPE,
    )  # fmt: skip
    assert process.stderr is not None
    try:
        async with asyncio.timeout(WAIT):
            while True:
                line = await process.stderr.readline()
                assert line, "the daemon ended before it logged " + until_event
                if json.loads(line).get("event") == until_event:
                    break
        process.send_signal(signal.SIGTERM)
        _, stderr = await asyncio.wait_for(process.communicate(), PROCESS_WAIT)
        assert process.returncode == 0, stderr.decode()
    finally:
        if process.returncode is None:
            process.kill()
            await process.wait()
    return set(listed.read_text().split())


async def test_a_polling_daemon_loads_neither_simulator_websocket_nor_sites(
    broker: MosquittoBroker, simulator: Simulator, tmp_path: Path
) -> None:
    raw = make_settings(broker, simulator, scan_interval=1.0)  # http on, discovery on
    # Until the memory upkeep's start-up freeze, and the trim it skips, are done.
    modules = await modules_of_daemon(raw, tmp_path, "memory_upkeep", log_level="debug")
    assert sorted(NOT_FOR_POLLING & modules) == []
    assert POLLING | {"goe2mqtt.web.server", "aiohttp.web"} <= modules


async def test_without_http_the_daemon_loads_no_web_server(
    broker: MosquittoBroker, simulator: Simulator, tmp_path: Path
) -> None:
    raw = make_settings(broker, simulator, scan_interval=1.0)
    raw["http"] = {"enabled": False}
    modules = await modules_of_daemon(raw, tmp_path, "charger_online")
    assert sorted(({"goe2mqtt.web.server", "aiohttp.web"} | NOT_FOR_POLLING) & modules) == []
    assert modules >= POLLING


@pytest.mark.parametrize(
    ("charger", "loads", "started"),
    [
        ({"transport": "websocket", "password": "pw-0a1b2c3d"},
         {"goe2mqtt.goe.websocket", "goe2mqtt.goe.ws_protocol", "bcrypt"}, "bridge_started"),
        # Stopped as soon as it started, while its own MQTT connection is still being
        # made: a cancel swallowed there once hung the stop.
        ({"transport": "mqtt", "token": None, "api_url": None}, {"goe2mqtt.goe.charger_mqtt"},
         "bridge_started"),
    ],
)  # fmt: skip
async def test_a_charger_that_pushes_loads_its_transport(
    broker: MosquittoBroker, simulator: Simulator, tmp_path: Path,
    charger: dict[str, Any], loads: set[str], started: str,
) -> None:  # fmt: skip
    """The other side of the same check: the code that stays out is there when used."""
    raw = make_settings(broker, simulator, scan_interval=1.0)
    raw["chargers"][0].update(charger)
    raw["chargers"][0] = {k: v for k, v in raw["chargers"][0].items() if v is not None}
    modules = await modules_of_daemon(raw, tmp_path, started)
    assert loads <= modules
    assert "goe2mqtt.sim" not in modules
