"""The example Node-RED flow, run by a real Node-RED against goe2mqtt and the simulator."""

from __future__ import annotations

import asyncio
import contextlib
import json
import shutil
import subprocess
from collections.abc import AsyncIterator, Callable
from pathlib import Path
from typing import Any

import aiohttp
import aiomqtt
import pytest

from goe2mqtt.config.settings import parse_settings
from goe2mqtt.sim.broker import MosquittoBroker, free_port
from goe2mqtt.sim.simulator import Faults, Simulator

from ..conftest import RunningBridge, make_settings, stop_process
from ..tool_cache import CACHE, installed_once

pytestmark = [
    pytest.mark.nodered,
    pytest.mark.skipif(shutil.which("npm") is None, reason="npm is not installed"),
]

NODE_RED_VERSION = "4.1.1"
FLOW = Path(__file__).resolve().parents[2] / "examples" / "node-red-flow.json"
WAIT = 60.0


def ensure_node_red() -> Path:
    def install(prefix: Path) -> None:
        subprocess.run(
            ["npm", "install", "--prefix", str(prefix), "--no-audit", "--no-fund",
             "--loglevel=error", f"node-red@{NODE_RED_VERSION}"],
            check=True,
            timeout=900,
        )  # fmt: skip

    prefix = installed_once(CACHE / f"node-red-{NODE_RED_VERSION}", install, NODE_RED_VERSION)
    return prefix / "node_modules" / ".bin" / "node-red"


def flow_for_test(broker: MosquittoBroker) -> list[dict[str, Any]]:
    """The example flow pointed at the test's broker, plus a capture the test can read."""
    flow: list[dict[str, Any]] = json.loads(FLOW.read_text())
    nodes = {node["id"]: node for node in flow}
    nodes["goe2mqtt-broker"].update(broker=broker.host, port=str(broker.port))
    tab = nodes["goe-power"]["z"]
    nodes["goe-power"]["wires"][0].append("capture-store")
    nodes["goe-result-in"]["wires"][0].append("capture-store")
    flow += [
        {"id": "capture-store", "type": "function", "z": tab, "name": "capture",
         "func": "const seen = global.get('seen') || [];\n"
                 "seen.push({topic: msg.topic, payload: msg.payload});\n"
                 "global.set('seen', seen);\nreturn null;",
         "outputs": 0, "wires": []},
        {"id": "capture-http", "type": "http in", "z": tab, "url": "/capture", "method": "get",
         "wires": [["capture-read"]]},
        {"id": "capture-read", "type": "function", "z": tab,
         "func": "msg.payload = global.get('seen') || [];\nreturn msg;",
         "outputs": 1, "wires": [["capture-reply"]]},
        {"id": "capture-reply", "type": "http response", "z": tab, "wires": []},
    ]  # fmt: skip
    return flow


class NodeRed:
    def __init__(self, binary: Path, user_dir: Path, flow: list[dict[str, Any]]) -> None:
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        user_dir.mkdir(parents=True, exist_ok=True)
        (user_dir / "flows.json").write_text(json.dumps(flow))
        (user_dir / "settings.js").write_text(
            "module.exports = {uiHost: '127.0.0.1', flowFile: 'flows.json',"
            " credentialSecret: false, diagnostics: {enabled: false},"
            " telemetry: {enabled: false}, logging: {console: {level: 'warn'}}};\n"
        )
        self.log_path = user_dir / "node-red.log"
        self._command = [str(binary), "--userDir", str(user_dir), "--port", str(self.port),
                         "--settings", str(user_dir / "settings.js")]  # fmt: skip
        self._process: subprocess.Popen[bytes] | None = None
        self.http = aiohttp.ClientSession()

    async def start(self) -> None:
        with open(self.log_path, "wb") as log:  # noqa: ASYNC230 - a local file, once
            self._process = subprocess.Popen(  # noqa: ASYNC220 - started once, not awaited
                self._command, stdout=log, stderr=subprocess.STDOUT
            )
        await self.until(lambda _: True, "Node-RED answering")

    async def captured(self) -> list[dict[str, Any]]:
        async with self.http.get(f"{self.url}/capture") as response:
            response.raise_for_status()
            seen: list[dict[str, Any]] = await response.json()
            return seen

    async def press(self, inject_id: str) -> None:
        """What the button on an inject node in the editor does."""
        async with self.http.post(f"{self.url}/inject/{inject_id}") as response:
            response.raise_for_status()

    async def until(
        self, check: Callable[[list[dict[str, Any]]], bool], what: str
    ) -> list[dict[str, Any]]:
        deadline = asyncio.get_running_loop().time() + WAIT
        seen: list[dict[str, Any]] = []
        while asyncio.get_running_loop().time() < deadline:
            if self._process is not None and self._process.poll() is not None:
                raise AssertionError(f"Node-RED exited: {self.log_path.read_text()[-2000:]}")
            with contextlib.suppress(aiohttp.ClientError):
                seen = await self.captured()
                if check(seen):
                    return seen
            await asyncio.sleep(0.3)
        raise AssertionError(f"{what} did not happen; captured {seen}")

    async def stop(self) -> None:
        await self.http.close()
        if self._process is not None:
            await stop_process(self._process, 20)


@pytest.fixture
async def node_red(tmp_path: Path, own_broker: MosquittoBroker) -> AsyncIterator[NodeRed]:
    binary = await asyncio.to_thread(ensure_node_red)
    running = NodeRed(binary, tmp_path / "node-red", flow_for_test(own_broker))
    try:
        await running.start()
        yield running
    finally:
        await running.stop()


async def test_example_flow_shows_power_and_starts_and_stops_charging(
    node_red: NodeRed, own_broker: MosquittoBroker, simulator: Simulator
) -> None:
    raw = make_settings(own_broker, simulator)
    raw["mqtt"]["base_topic"] = "goe2mqtt"  # the flow's topics, as a user has them
    garage = simulator.charger("012345")
    garage.plug_in()
    running = RunningBridge(parse_settings(raw))
    await running.start()
    try:

        def power(seen: list[dict[str, Any]]) -> list[Any]:
            return [m["payload"] for m in seen if m["topic"] == "charging_power"]

        def result(seen: list[dict[str, Any]], request_id: str) -> dict[str, Any] | None:
            for message in seen:
                payload = message["payload"]
                if message["topic"] != "charging_power" and payload.get("id") == request_id:
                    return dict(payload)
            return None

        seen = await node_red.until(lambda s: power(s) != [], "the charging power in Node-RED")
        assert power(seen)[-1] == pytest.approx(garage.power(), abs=1)

        await node_red.press("goe-stop")
        await node_red.until(lambda s: result(s, "node-red-stop") is not None, "the stop result")
        assert garage.frc == 1
        await node_red.until(lambda s: power(s)[-1:] == [0], "power dropping to 0")

        await node_red.press("goe-start")
        seen = await node_red.until(
            lambda s: result(s, "node-red-start") is not None, "the start result"
        )
        started = result(seen, "node-red-start")
        assert started is not None
        assert started["ok"] is True
        assert started["applied"] == [{"amp": 16}, {"frc": 2}]
        assert (garage.frc, garage.amp) == (2, 16)

        # PV surplus: the flow passes the meter's grid power on to the charger's feed.
        async with aiomqtt.Client(own_broker.host, own_broker.port) as meter:
            for _ in range(int(WAIT)):
                await meter.publish("home/meter/grid_power", "-2100")
                if garage.ids == {"pGrid": -2100.0}:
                    break
                await asyncio.sleep(1)
        assert garage.ids == {"pGrid": -2100.0}
        assert garage.status()["pgrid"] == -2100.0

        # A value the charger does not send reaches the flow as null, not as "None".
        garage.faults = Faults(missing=["nrg"])
        await node_red.until(lambda s: power(s)[-1:] == [None], "unknown power as null")
        garage.faults = Faults()
    finally:
        await running.stop()
