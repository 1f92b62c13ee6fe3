"""Benchmark: how fast the MQTT session drains retained topics while the loop is saturated.

Not a test: it prints a table. A fleet's start or restart keeps the bridge's event loop
busy (thousands of sockets' frames, connects, hashes handed back), and every turn of
the loop is long: what the session owes the broker (the chargers' first states) goes
out at the pace of the turns its publishes wait for. Here N retained topics are owed
at once to a Mosquitto of its own while B tasks each spin S µs per turn (a turn of
~B*S µs), and the time until the broker acknowledged them all is measured, for each
source tree given (``--trees OLD,NEW``: another checkout's goe2mqtt, in its own process).

    python bench/sender_drain.py
    python bench/sender_drain.py --trees /work/wt/base,. --topics 3000
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import subprocess
import sys
import time
from pathlib import Path

LOADS = ((0, 0.0), (1, 10_000.0), (200, 50.0))  # (busy tasks, µs each a turn)


async def drain(topics: int, busy: int, spin_us: float) -> float:
    """Topics acknowledged per second, with the loop kept busy."""
    from goe2mqtt.mqtt.session import MqttOptions, MqttSession
    from goe2mqtt.sim.broker import MosquittoBroker

    async def spin(stop: asyncio.Event) -> None:
        while not stop.is_set():
            until = time.perf_counter() + spin_us / 1e6
            while time.perf_counter() < until:
                pass
            await asyncio.sleep(0)

    with MosquittoBroker() as broker:
        options = MqttOptions(host=broker.host, port=broker.port, client_id="drain",
                              keepalive=60, availability_topic="drain/availability")  # fmt: skip
        session = MqttSession(options, [])
        running = asyncio.create_task(session.run(lambda message: None))
        while not session.connected:
            await asyncio.sleep(0.05)
        stop = asyncio.Event()
        spinning = [asyncio.create_task(spin(stop)) for _ in range(busy)]
        payload = b'{"state": "' + b"x" * 2000 + b'"}'  # a charger's JSON state, roughly
        started = time.perf_counter()
        for n in range(topics):
            await session.publish_retained(f"drain/c{n}/state", payload)
        while session.backlog:
            await asyncio.sleep(0.01)
        seconds = time.perf_counter() - started
        stop.set()
        await asyncio.gather(*spinning)
        session.stop()
        await asyncio.wait_for(running, 30)
    return topics / seconds


def child(topics: int) -> None:
    rates = [asyncio.run(drain(topics, busy, spin)) for busy, spin in LOADS]
    print(json.dumps(rates))


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--trees", default=".", help="source trees, comma-separated")
    parser.add_argument("--topics", type=int, default=2000)
    parser.add_argument("--child", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        child(args.topics)
        return
    print(f"load average {os.getloadavg()[0]:.1f}; {args.topics} retained topics owed at once")
    header = " | ".join(f"{b} x {s:.0f} µs a turn" if b else "idle loop" for b, s in LOADS)
    print(f"| tree | {header} |")
    print("|---|" + "---:|" * len(LOADS))
    for tree in args.trees.split(","):
        path = Path(tree).resolve()
        env = {**os.environ, "PYTHONPATH": str(path), "GOE2MQTT_LOG_LEVEL": "warning"}
        command = [sys.executable, __file__, "--child", "--topics", str(args.topics)]
        out = subprocess.run(command, env=env, check=True, capture_output=True, text=True).stdout
        rates = json.loads(out.strip().splitlines()[-1])
        print(f"| {path} | " + " | ".join(f"{r:.0f}/s" for r in rates) + " |")


if __name__ == "__main__":
    main()
