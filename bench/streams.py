"""Benchmark: many live streams (/events) held open at once, as a hostile HTTP client can.

Not a test: it prints figures. It runs N simulated chargers (bench/page.py's shape: a
fifth with a car polled every 10 s, the rest idle every 30 s), a Mosquitto of its own
and goe2mqtt as its own process (this checkout, or --bridge-path another), then for each
count of streams holds that many /events?state=charging open (the filtered page: each
tick looks at every charger's state) for --window seconds and reads the bridge's CPU
share, its longest event-loop hold (goe2mqtt_event_loop_lag_seconds) and how long
/healthz takes to answer, with how many streams the bridge took (200) or turned away.

    python bench/streams.py --n 500 --streams 0 50 200 800
    python bench/streams.py --bridge-path /work/wt/base   # the code before
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import os
import sys
import tempfile
import time
import uuid
from pathlib import Path
from typing import Any

import aiohttp

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import bridge_process
from page import cpu_share
from poll_fleet import serials

from goe2mqtt.sim.broker import MosquittoBroker, free_port
from goe2mqtt.sim.simulator import SimulatedCharger, Simulator

TOKEN = "bench-token"


async def loop_lag(session: aiohttp.ClientSession, url: str) -> float:
    async with session.get(url + "/metrics") as answer:
        for line in (await answer.text()).splitlines():
            if line.startswith("goe2mqtt_event_loop_lag_seconds "):
                return float(line.split()[1])
    return float("nan")


async def hold(session: aiohttp.ClientSession, url: str, taken: list[int]) -> None:
    """One stream held open and read, until cancelled."""
    with contextlib.suppress(aiohttp.ClientError):
        async with session.get(url + "/events?state=charging") as answer:
            taken.append(answer.status)
            while await answer.content.readany():
                pass


async def window(url: str, pid: int, streams: int, seconds: float) -> dict[str, Any]:
    connector = aiohttp.TCPConnector(limit=0)
    async with aiohttp.ClientSession(connector=connector) as session:
        taken: list[int] = []
        holders = [asyncio.create_task(hold(session, url, taken)) for _ in range(streams)]
        try:
            await asyncio.sleep(min(5.0, 1 + streams / 100))  # every stream asked for
            cpu = await cpu_share(pid, seconds)
            lag = await loop_lag(session, url)
            started = time.monotonic()
            async with session.get(url + "/healthz") as answer:
                await answer.read()
            healthz_ms = (time.monotonic() - started) * 1000
        finally:
            for task in holders:
                task.cancel()
            await asyncio.gather(*holders, return_exceptions=True)
    return {"streams": streams, "streams_taken": taken.count(200),
            "streams_refused": len(taken) - taken.count(200), "cpu_share": cpu,
            "loop_lag_s": lag, "healthz_ms": round(healthz_ms, 1)}  # fmt: skip


async def run(args: Any) -> dict[str, Any]:
    n, scan = args.n, 10.0
    chargers = [SimulatedCharger(serial, TOKEN) for serial in serials(n)]
    for charger in chargers[: n // 5]:
        charger.plug_in()
    simulator = Simulator(chargers)
    await simulator.start()
    workdir = Path(tempfile.mkdtemp(prefix="goe2mqtt-streams-"))
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    tree = bridge_process.tree_of(args.bridge_path)
    result: dict[str, Any] = {"n": n, "bridge_from": str(bridge_process.source(tree)),
                              "load_before": os.getloadavg(), "windows": []}  # fmt: skip
    with MosquittoBroker() as broker:
        config = workdir / "config.yaml"
        config.write_text(json.dumps({
            "mqtt": {"host": broker.host, "port": broker.port, "base_topic": "streams",
                     "client_id": f"streams-{uuid.uuid4().hex[:6]}", "discovery": False,
                     "leaf_topics": False},
            "state_dir": str(workdir),
            "http": {"listen": f"127.0.0.1:{port}", "charger_metrics": "health"},
            "chargers": [{"name": f"c{c.serial}", "serial": c.serial, "token": TOKEN,
                          "api_url": simulator.url_for(c.serial), "scan_interval": scan,
                          "idle_scan_interval": 30.0} for c in chargers],
        }))  # fmt: skip
        log = workdir / "bridge.log"
        arguments = ["--config", str(config), "--log-level", "warning", "--log-format", "json"]
        bridge = bridge_process.start(tree, arguments, log)
        try:
            await bridge_process.until_online(url, n, bridge, log)
            for streams in args.streams:
                result["windows"].append(await window(url, bridge.pid, streams, args.window))
                print(json.dumps(result["windows"][-1]), flush=True)
        finally:
            bridge_process.stop(bridge)
    await simulator.stop()
    result["load_after"] = os.getloadavg()
    return result


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--n", type=int, default=500)
    parser.add_argument("--streams", type=int, nargs="+", default=[0, 50, 200, 800])
    parser.add_argument("--window", type=float, default=10.0, help="s each count is held")
    parser.add_argument("--bridge-path", default="", help="the tree the bridge runs from")
    args = parser.parse_args()
    result = asyncio.run(run(args))
    print(json.dumps({k: v for k, v in result.items() if k != "windows"}, default=str))


if __name__ == "__main__":
    main()
