"""Benchmark: one charger idle at 1 s polling - how often the daemon wakes, and its CPU.

Not a test: it prints a table. A Mosquitto and the simulated cloud serving one charger
(bench/idle_rss.py's), then for each source tree given, goe2mqtt as its own process
with that charger (scan_interval 1 s): once idle, over --seconds, its threads'
voluntary context switches (each a wake-up from a wait: the event loop's epoll, a
thread's queue) and its CPU time, read from /proc (nothing attached to the process).
Issue 32: the young collections every 0.1 s woke every daemon ten times a second (as
the loop watch's samples do: timers due together wake the loop once).

    python bench/idle_wakeups.py --trees /work/wt/base,.    # before and after, one run
"""

from __future__ import annotations

import argparse
import asyncio
import os
import sys
from pathlib import Path

from idle_rss import idle_daemon  # bench/, as this file

from goe2mqtt.sim.broker import MosquittoBroker
from goe2mqtt.sim.simulator import SimulatedCharger, Simulator

SERIAL = "300001"
TOKEN = "bench-token"


def cpu_ns(pid: int) -> int:
    """CPU time of every thread of ``pid`` so far, in ns (schedstat: finer than the
    clock ticks of /proc/PID/stat, 10 ms each - a third of a ms a second over 30 s)."""
    return sum(int((task / "schedstat").read_text().split()[0])
               for task in Path(f"/proc/{pid}/task").iterdir())  # fmt: skip


def switches(pid: int) -> int:
    """Voluntary context switches of every thread of ``pid`` so far."""
    total = 0
    for task in Path(f"/proc/{pid}/task").iterdir():
        for line in (task / "status").read_text().splitlines():
            if line.startswith("voluntary_ctxt_switches:"):
                total += int(line.split()[1])
    return total


async def measure(tree: Path, simulator: Simulator, broker: MosquittoBroker, seconds: float,
                  settle: float) -> tuple[float, float]:  # fmt: skip
    """(wake-ups per second, CPU ms per second) of one idle daemon from ``tree``."""
    async with idle_daemon(tree, simulator, broker, polls=10, http=True) as (daemon, _):
        await asyncio.sleep(settle)
        woke, cpu = switches(daemon.pid), cpu_ns(daemon.pid)
        await asyncio.sleep(seconds)
        woke, cpu = switches(daemon.pid) - woke, cpu_ns(daemon.pid) - cpu
    return woke / seconds, cpu / 1e6 / seconds


async def main_async(args: argparse.Namespace) -> None:
    trees = [Path(t).resolve() for t in args.trees.split(",")]
    simulator = Simulator([SimulatedCharger(SERIAL, TOKEN)])  # no car: the idle charger
    await simulator.start()
    rows = []
    try:
        with MosquittoBroker() as broker:
            for round_ in range(args.rounds):
                for tree in trees:
                    woke, cpu = await measure(tree, simulator, broker, args.seconds, args.settle)
                    rows.append((round_ + 1, tree, woke, cpu))
                    print(f"  {tree}: {woke:.1f} wake-ups/s, {cpu:.2f} CPU ms/s",
                          file=sys.stderr, flush=True)  # fmt: skip
    finally:
        await simulator.stop()
    print(f"\none charger idle, scan_interval 1 s; {args.seconds:.0f} s measured after"
          f" {args.settle:.0f} s; load average {os.getloadavg()[0]:.2f}")  # fmt: skip
    print("| round | tree | wake-ups / s (all threads) | CPU ms / s |")
    print("|---:|---|---:|---:|")
    for round_, tree, woke, cpu in rows:
        print(f"| {round_} | {tree} | {woke:.1f} | {cpu:.2f} |")


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--trees", default=".", help="source trees, comma-separated")
    parser.add_argument("--seconds", type=float, default=30.0, help="measured")
    parser.add_argument("--settle", type=float, default=10.0, help="idle before measuring")
    parser.add_argument("--rounds", type=int, default=2)
    asyncio.run(main_async(parser.parse_args()))


if __name__ == "__main__":
    main()
