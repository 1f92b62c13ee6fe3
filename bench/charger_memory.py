"""What each charger holds in the bridge, by the line that allocated it (issue 32, item 3).

Not a test. Runs the bridge in this process, traced (tracemalloc), with N pushing
chargers - bench/push.py's server, in a child process so its memory is not counted -
discovery and every topic on; once every charger is online and nothing is owed to the
broker, prints the bytes still held per charger, grouped by the innermost goe2mqtt line
in each allocation's traceback (what in the bridge made it) and by the allocating line
itself.

    python bench/charger_memory.py --sizes 200
"""

from __future__ import annotations

import argparse
import asyncio
import gc
import subprocess
import sys
import tempfile
import time
import tracemalloc
from collections import Counter
from pathlib import Path
from typing import Any

import aiomqtt

from goe2mqtt.bridge.process import Bridge
from goe2mqtt.config.settings import parse_settings
from goe2mqtt.sim.broker import MosquittoBroker

HERE = Path(__file__).resolve().parent
SERVER = """
import asyncio, sys
sys.path.insert(0, {here!r})
from push_server import PushServer, serials
async def main():
    server = PushServer(serials({n}))
    await server.start()
    print(server.port, flush=True)
    await server.tick_forever()
asyncio.run(main())
"""


def by_bridge_line(snapshot: tracemalloc.Snapshot) -> Counter[str]:
    """Bytes per innermost goe2mqtt frame of each allocation ("other": none in it)."""
    held: Counter[str] = Counter()
    for trace in snapshot.traces:
        where = "other"
        for frame in reversed(trace.traceback):  # innermost first
            if "/goe2mqtt/" in frame.filename and "/goe2mqtt/sim/" not in frame.filename:
                where = f"{frame.filename.split('/goe2mqtt/', 1)[1]}:{frame.lineno}"
                break
        held[where] += trace.size
    return held


def start_server(n: int) -> tuple[subprocess.Popen[bytes], int]:
    """bench/push.py's server for N chargers, in a child process; it and its port."""
    server = subprocess.Popen(
        [sys.executable, "-c", SERVER.format(here=str(HERE), n=n)], stdout=subprocess.PIPE
    )
    assert server.stdout is not None
    return server, int(server.stdout.readline())


def websocket_fleet(port: int, n: int, workdir: Path, mqtt: dict[str, Any]) -> dict[str, Any]:
    """The bridge's raw config: N websocket chargers of that server, ``mqtt`` its section."""
    return {
        "mqtt": mqtt,
        "state_dir": str(workdir),
        "http": {"listen": "127.0.0.1:0"},
        "chargers": [{"name": f"c{s}", "serial": s, "token": "bench-token",
                      "password": "bench-password", "transport": "websocket",
                      "api_url": f"http://127.0.0.1:{port}/{s}"}
                     for s in (f"{200000 + i:06d}" for i in range(n))],
    }  # fmt: skip


async def all_online(broker: MosquittoBroker, base: str, n: int) -> None:
    """Until N chargers under ``base`` say online at once."""
    online: set[str] = set()
    async with aiomqtt.Client(broker.host, broker.port, keepalive=600) as client:
        await client.subscribe(f"{base}/+/availability")
        async with asyncio.timeout(600):
            async for message in client.messages:
                if "/bridge/" in message.topic.value:
                    continue
                if message.payload == b"online":
                    online.add(message.topic.value)
                else:
                    online.discard(message.topic.value)
                if len(online) >= n:
                    return


async def until_quiet(bridge: Bridge) -> None:
    """Until nothing was owed to the broker for 5 s."""
    quiet_since = time.monotonic()
    while time.monotonic() - quiet_since < 5:
        await asyncio.sleep(0.5)
        if bridge.mqtt.backlog:
            quiet_since = time.monotonic()


async def run(n: int, top: int) -> None:
    server, port = start_server(n)
    workdir = Path(tempfile.mkdtemp(prefix="goe2mqtt-memory-"))
    try:
        with MosquittoBroker() as broker:
            mqtt = {"host": broker.host, "port": broker.port, "base_topic": "mem",
                    "discovery_prefix": "mem-ha"}  # fmt: skip
            bridge = Bridge(parse_settings(websocket_fleet(port, n, workdir, mqtt)))
            gc.collect()
            before = tracemalloc.take_snapshot()
            task = asyncio.create_task(bridge.run())
            await all_online(broker, "mem", n)
            await until_quiet(bridge)
            gc.collect()
            after = tracemalloc.take_snapshot()
            held, was = by_bridge_line(after), by_bridge_line(before)
            total = sum(held.values()) - sum(was.values())
            print(f"{n} chargers: {total / n / 1024:.1f} KiB traced per charger")
            print("| KiB per charger | innermost goe2mqtt line |\n|---:|---|")
            for where, size in (held - was).most_common(top):
                print(f"| {size / n / 1024:.2f} | {where} |")
            print("| KiB per charger | allocating line |\n|---:|---|")
            for stat in after.compare_to(before, "lineno")[:top]:
                frame = stat.traceback[0]
                print(f"| {stat.size_diff / n / 1024:.2f} | {frame.filename}:{frame.lineno} |")
            bridge.request_stop()
            await asyncio.wait_for(task, 60)
    finally:
        server.terminate()
        server.wait(10)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--sizes", type=lambda s: [int(x) for x in s.split(",")], default=[200])
    parser.add_argument("--top", type=int, default=30)
    parser.add_argument("--frames", type=int, default=12)
    args = parser.parse_args()
    tracemalloc.start(args.frames)
    for n in args.sizes:
        asyncio.run(run(n, args.top))


if __name__ == "__main__":
    main()
