"""What the garbage collector walks at N pushing chargers: the objects made in a window
that are still tracked when it ends, by type, per charger (issue 32, item 1).

Not a test. Runs the bridge in this process (JSON state only) with N websocket
chargers - bench/push.py's server, in a child process - and, once every charger is
online and nothing is owed to the broker, for each window W: the heap collected and
frozen, the collector off for W seconds, then the tracked objects not frozen by type
(what a collection at that moment would walk) and the time a collection of them takes,
and the objects that survived it (what it would promote). The bridge's own periodic
collections are off meanwhile (they would freeze part of what is counted).

With --storm S instead: the bridge's own collections on, the server stopped (SIGSTOP) for
S seconds - past the silence limit, every socket closes and reconnects - and resumed;
once every charger is back, a full collection says how much garbage was frozen meanwhile
(what only a full collection frees).

    python bench/gc_survivors.py --sizes 500 --windows 1,10
    python bench/gc_survivors.py --sizes 500 --storm 70
"""

from __future__ import annotations

import argparse
import asyncio
import gc
import os
import signal
import subprocess
import tempfile
import time
from collections import Counter
from pathlib import Path

from charger_memory import (  # bench/, as push.py's server is
    all_online,
    start_server,
    until_quiet,
    websocket_fleet,
)

from goe2mqtt.bridge import memory
from goe2mqtt.bridge.process import Bridge
from goe2mqtt.config.settings import parse_settings
from goe2mqtt.sim.broker import MosquittoBroker


def by_type() -> Counter[str]:
    """The tracked objects not frozen, by type name (the list itself left out)."""
    objects = gc.get_objects()
    counted = Counter(type(o).__qualname__ for o in objects)
    counted["list"] -= 1
    del objects
    return counted


async def one_window(n: int, window: float, top: int) -> None:
    gc.collect()
    gc.freeze()
    gc.disable()
    await asyncio.sleep(window)
    made = by_type()
    started = time.perf_counter()
    collected = gc.collect()
    took = time.perf_counter() - started
    survived = by_type()
    gc.enable()
    total, kept = sum(made.values()), sum(survived.values())
    print(f"\n{n} chargers, {window:g} s: {total} tracked objects not frozen"
          f" ({total / n:.1f} per charger), a collection of them {took * 1000:.1f} ms,"
          f" {collected} unreachable, {kept / n:.1f} per charger survived")  # fmt: skip
    print("| type | per charger, made | survived |\n|---|---:|---:|")
    for name, count in made.most_common(top):
        print(f"| {name} | {count / n:.2f} | {survived[name] / n:.2f} |")


async def storm(n: int, server: subprocess.Popen[bytes], broker: MosquittoBroker, s: float) -> None:
    os.kill(server.pid, signal.SIGSTOP)
    await asyncio.sleep(s)
    os.kill(server.pid, signal.SIGCONT)
    await all_online(broker, "gcs", n)
    await asyncio.sleep(5)
    started = time.perf_counter()
    gc.unfreeze()
    frozen_garbage = gc.collect()
    gc.freeze()
    print(f"\n{n} chargers, the server stopped {s:g} s and resumed: a full collection found"
          f" {frozen_garbage} unreachable objects frozen ({frozen_garbage / n:.1f} per"
          f" charger), {(time.perf_counter() - started) * 1000:.0f} ms")  # fmt: skip


async def run(n: int, windows: list[float], top: int, storm_s: float | None) -> None:
    server, port = start_server(n)
    workdir = Path(tempfile.mkdtemp(prefix="goe2mqtt-gc-"))
    try:
        with MosquittoBroker() as broker:
            mqtt = {"host": broker.host, "port": broker.port, "base_topic": "gcs",
                    "discovery": False, "leaf_topics": False}  # fmt: skip
            bridge = Bridge(parse_settings(websocket_fleet(port, n, workdir, mqtt)))
            task = asyncio.create_task(bridge.run())
            await all_online(broker, "gcs", n)
            await until_quiet(bridge)
            if storm_s is not None:
                await storm(n, server, broker, storm_s)
            else:
                for window in windows:
                    await one_window(n, window, top)
            bridge.request_stop()
            await asyncio.wait_for(task, 60)
    finally:
        server.terminate()
        server.wait(10)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--sizes", type=lambda s: [int(x) for x in s.split(",")], default=[500])
    parser.add_argument(
        "--windows", type=lambda s: [float(x) for x in s.split(",")], default=[1.0, 10.0]
    )
    parser.add_argument("--top", type=int, default=25)
    parser.add_argument("--storm", type=float, metavar="S", help="then stop the server S s")
    args = parser.parse_args()
    # The bridge's own collections of what is not frozen would freeze what is counted.
    if args.storm is None:
        memory.YOUNG_EVERY = 1e6
    for n in args.sizes:
        asyncio.run(run(n, args.windows, args.top, args.storm))


if __name__ == "__main__":
    main()
