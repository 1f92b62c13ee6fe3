"""Hashing beside DNS: how long a polled charger waits while a fleet of websocket
chargers hash their passwords (PBKDF2, ~0.1-0.3 s of CPU each).

Not a test: it prints a table. For each N: a Mosquitto of its own; the simulator with
N local websocket chargers (PBKDF2) and one cloud charger whose api_url names
``localhost`` (so aiohttp resolves it in its threaded resolver); the bridge in this
process. Timed from the bridge's start: the cloud charger's first poll, and every
websocket charger live. ``default executor`` is how hashing ran before issue 27
(asyncio.to_thread: the executor DNS and aiomqtt's connect use too); ``own threads``
is goe2mqtt's now. The simulator's side of each hash is computed before the clock runs.

    python bench/hashing.py               # N = 0, 50
    python bench/hashing.py --sizes 200
"""

from __future__ import annotations

import argparse
import asyncio
import time
import uuid
from concurrent.futures import ThreadPoolExecutor

from goe2mqtt.bridge.process import Bridge
from goe2mqtt.config.settings import parse_settings
from goe2mqtt.goe import ws_auth
from goe2mqtt.goe.ws_protocol import hashed_password
from goe2mqtt.sim.broker import MosquittoBroker
from goe2mqtt.sim.charger import SimulatedCharger
from goe2mqtt.sim.simulator import Simulator

TOKEN = "bench-token"
PASSWORD = "bench-password"
CLOUD = "099999"


async def run(broker: MosquittoBroker, n: int, own_threads: bool) -> tuple[float, float]:
    """(seconds to the cloud charger's first poll, seconds to every socket live)."""
    serials = [f"{400000 + i:06d}" for i in range(n)]
    sim = Simulator(
        [SimulatedCharger(CLOUD, TOKEN)]
        + [SimulatedCharger(s, None, password=PASSWORD) for s in serials]
    )
    await sim.start()
    for serial in serials:
        await sim.serve_local(serial)
    with ThreadPoolExecutor(2) as pool:  # the simulator's side, before the clock runs
        hashes = pool.map(lambda s: hashed_password(PASSWORD, s, "pbkdf2"), serials)
        for serial, hashed in zip(serials, hashes, strict=True):
            sim.sockets[serial]._hashed = hashed
    first_poll: list[float] = []
    sim.observers.append(
        lambda serial, call: first_poll.append(time.monotonic()) if serial == CLOUD else None
    )
    run_id = uuid.uuid4().hex[:8]
    settings = parse_settings({
        "mqtt": {"host": broker.host, "port": broker.port, "client_id": f"bench-{run_id}",
                 "base_topic": f"bench{run_id}", "discovery": False},
        "chargers": [
            {"name": "cloudy", "serial": CLOUD, "token": TOKEN, "scan_interval": 5,
             "api_url": sim.url_for(CLOUD).replace("127.0.0.1", "localhost")},
            *({"name": f"ws{i}", "host": sim.local_hosts[s], "password": PASSWORD,
               "transport": "websocket", "scan_interval": 5} for i, s in enumerate(serials)),
        ],
    })  # fmt: skip
    saved = ws_auth.hashing
    if not own_threads:
        ws_auth.hashing = None  # type: ignore[assignment]  # the default executor
    bridge = Bridge(settings)
    started = time.monotonic()
    task = asyncio.create_task(bridge.run())
    try:
        while not first_poll or len(bridge.chargers) < n + 1 or not all(
            bridge.chargers[f"ws{i}"].pushing for i in range(n)
        ):  # fmt: skip
            await asyncio.sleep(0.01)
        live = time.monotonic() - started
    finally:
        ws_auth.hashing = saved
        bridge.request_stop()
        await task
        await sim.stop()
    return first_poll[0] - started, live


async def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--sizes", type=int, nargs="+", default=[0, 50])
    args = parser.parse_args()
    print("| websocket chargers | hashing in | cloud charger's first poll (s) | all live (s) |")
    print("|---|---|---|---|")
    with MosquittoBroker() as broker:
        for n in args.sizes:
            for own in (False, True):
                poll, live = await run(broker, n, own)
                where = "own threads" if own else "default executor"
                print(f"| {n} | {where} | {poll:.2f} | {live:.1f} |", flush=True)


if __name__ == "__main__":
    asyncio.run(main())
