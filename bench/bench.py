"""Benchmark: goe2mqtt polling N simulated chargers, against a bare aiohttp loop.

Not a test: it prints a table. For each N it starts a Mosquitto of its own and the
simulated cloud serving N chargers on one port (here, in this process, so it can
time requests), runs goe2mqtt as its own process (so its CPU and memory are its
own) and measures over a fixed window:

- polls/s achieved vs configured, and the p99 gap between two polls of a charger
  relative to scan_interval (1.0 = every poll on time);
- CPU seconds per 1000 polls and peak RSS of the goe2mqtt process;
- MQTT messages per poll while nothing changes (must be ~0);
- command latency: a client publishes a command -> the simulator receives the set;
- change latency: a value changes in the simulator -> the new value on MQTT,
  relative to scan_interval.

Then the limit: a bare aiohttp loop (bench/bare_poll.py) that only fetches the same
N statuses with the same concurrency; goe2mqtt's CPU per poll divided by the bare
loop's is the ratio we track.

    python bench/bench.py                 # N = 1, 100, 1000; 60 s windows
    python bench/bench.py --sizes 1000 --window 120
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import platform
import random
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import aiomqtt

from goe2mqtt.broker import MosquittoBroker
from goe2mqtt.simulator import SimulatedCharger, Simulator

HERE = Path(__file__).resolve().parent
TOKEN = "bench-token"
BASE = "bench"
MIN_POLLS_FOR_CPU = 500


def proc_cpu(pid: int) -> float:
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def proc_memory(pid: int) -> tuple[float, float]:
    """(RSS, peak RSS) in MiB."""
    values = {}
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        key, _, rest = line.partition(":")
        if key in ("VmRSS", "VmHWM"):
            values[key] = int(rest.split()[0]) / 1024
    return values["VmRSS"], values["VmHWM"]


@dataclass
class PollClock:
    """Every request the simulator sees, timed."""

    polls: int = 0
    last_poll: dict[str, float] = field(default_factory=dict)
    gaps: list[float] = field(default_factory=list)
    sets: dict[str, float] = field(default_factory=dict)  # serial -> arrival of last set
    recording_gaps: bool = False

    def __call__(self, serial: str, call: str) -> None:
        now = time.monotonic()
        if call == "set":
            self.sets[serial] = now
            return
        self.polls += 1
        previous = self.last_poll.get(serial)
        if previous is not None and self.recording_gaps:
            self.gaps.append(now - previous)
        self.last_poll[serial] = now


@dataclass
class Result:
    n: int
    scan_interval: float
    configured: float = 0.0
    achieved: float = 0.0
    gap_p99: float = 0.0
    cpu_per_1000: float = 0.0
    bare_cpu_per_1000: float = 0.0
    rss: float = 0.0
    peak_rss: float = 0.0
    messages_per_poll: float = 0.0
    command_ms: list[float] = field(default_factory=list)
    change_rel: list[float] = field(default_factory=list)
    startup: float = 0.0
    polls: int = 0  # in the quiet window; CPU per poll needs enough of them to mean anything


def serials(n: int) -> list[str]:
    return [f"{100000 + i:06d}" for i in range(n)]


def write_config(
    path: Path, broker: MosquittoBroker, simulator: Simulator, n: int, scan: float
) -> None:
    config = {
        "mqtt": {"host": broker.host, "port": broker.port, "base_topic": BASE,
                 "client_id": f"bench-{uuid.uuid4().hex[:6]}", "discovery_prefix": "bench-ha"},
        "chargers": [
            {"name": f"c{serial}", "serial": serial, "token": TOKEN,
             "api_url": simulator.url_for(serial), "scan_interval": scan,
             "idle_scan_interval": scan}  # measure the full load, not the idle discount
            for serial in serials(n)
        ],
    }  # fmt: skip
    path.write_text(json.dumps(config))


async def run_size(n: int, args: Any) -> Result:
    scan = args.scan_interval
    result = Result(n, scan, configured=n / scan)
    chargers = [SimulatedCharger(serial, TOKEN) for serial in serials(n)]
    simulator = Simulator(chargers)
    clock = PollClock()
    simulator.observers.append(clock)
    await simulator.start()
    workdir = Path(tempfile.mkdtemp(prefix="goe2mqtt-bench-"))
    with MosquittoBroker() as broker:
        config = workdir / "config.yaml"
        write_config(config, broker, simulator, n, scan)
        messages: list[tuple[float, str, bytes]] = []
        online: set[str] = set()
        all_online = asyncio.Event()

        async with aiomqtt.Client(broker.host, broker.port, identifier="bench-probe") as probe:
            await probe.subscribe(f"{BASE}/#", qos=0)
            await probe.subscribe("bench-ha/#", qos=0)

            async def consume() -> None:
                async for message in probe.messages:
                    topic = message.topic.value
                    payload = message.payload if isinstance(message.payload, bytes) else b""
                    messages.append((time.monotonic(), topic, payload))
                    if topic.endswith("/availability") and payload == b"online":
                        online.add(topic)
                        if len(online) >= n + 1:  # every charger and the bridge
                            all_online.set()

            consumer = asyncio.create_task(consume())
            started = time.monotonic()
            bridge = subprocess.Popen(
                [sys.executable, "-m", "goe2mqtt", "--config", str(config),
                 "--log-level", "warning", "--log-format", "json"],
                stdout=open(workdir / "bridge.log", "wb"), stderr=subprocess.STDOUT,
            )  # fmt: skip
            try:
                await asyncio.wait_for(all_online.wait(), 120 + n / 10)
                result.startup = time.monotonic() - started
                # Let the start-up flood (discovery, first states) drain and every
                # charger settle into its schedule before measuring.
                await asyncio.sleep(2 * scan)

                # Quiet window: nothing changes, so nothing should be published.
                clock.recording_gaps = True
                cpu0, polls0, mark = proc_cpu(bridge.pid), clock.polls, len(messages)
                t0 = time.monotonic()
                await asyncio.sleep(args.window)
                elapsed = time.monotonic() - t0
                cpu1, polls1 = proc_cpu(bridge.pid), clock.polls
                quiet = [m for m in messages[mark:] if "/bridge/" not in m[1]]
                polls = polls1 - polls0
                result.polls = polls
                result.achieved = polls / elapsed
                result.cpu_per_1000 = (cpu1 - cpu0) / polls * 1000 if polls else float("nan")
                result.messages_per_poll = len(quiet) / polls if polls else float("nan")
                gaps = sorted(clock.gaps)
                result.gap_p99 = gaps[int(len(gaps) * 0.99)] / scan if gaps else float("nan")

                # Active window: commands and changes while the fleet keeps polling.
                await measure_latencies(probe, simulator, messages, result, args)
                result.rss, result.peak_rss = proc_memory(bridge.pid)
            finally:
                bridge.terminate()
                bridge.wait(30)
                consumer.cancel()
    result.bare_cpu_per_1000 = await bare_loop(simulator, clock, n, scan, args.bare_window)
    await simulator.stop()
    return result


async def measure_latencies(
    probe: aiomqtt.Client, simulator: Simulator, messages: list[tuple[float, str, bytes]],
    result: Result, args: Any,
) -> None:  # fmt: skip
    clock = next(o for o in simulator.observers if isinstance(o, PollClock))
    names = list(simulator.chargers)
    scan = result.scan_interval
    for round_ in range(args.commands):
        serial = random.choice(names)
        before = clock.sets.get(serial)
        amp = 6 + round_ % 10
        sent = time.monotonic()
        await probe.publish(f"{BASE}/c{serial}/cmd/change_charging_power", str(amp), qos=1)
        deadline = sent + 10
        while clock.sets.get(serial) == before and time.monotonic() < deadline:
            await asyncio.sleep(0.0005)
        if clock.sets.get(serial) != before:
            result.command_ms.append((clock.sets[serial] - sent) * 1000)
        await asyncio.sleep(0.2)
    for _ in range(args.changes):
        serial = random.choice(names)
        charger = simulator.charger(serial)
        topic = f"{BASE}/c{serial}/car_connected"
        want = b"false" if charger.plugged else b"true"
        mark = len(messages)
        changed = time.monotonic()
        charger.unplug() if charger.plugged else charger.plug_in()
        deadline = changed + 4 * scan
        while time.monotonic() < deadline:
            hit = next((m for m in messages[mark:] if m[1] == topic and m[2] == want), None)
            if hit is not None:
                result.change_rel.append((hit[0] - changed) / scan)
                break
            await asyncio.sleep(0.01)


async def bare_loop(
    simulator: Simulator, clock: PollClock, n: int, scan: float, window: float
) -> float:
    """CPU seconds per 1000 polls of the bare fetch loop, in a process of its own."""
    urls = [simulator.url_for(serial) for serial in serials(n)]
    url_file = Path(tempfile.mkdtemp(prefix="goe2mqtt-bare-")) / "urls.json"
    url_file.write_text(json.dumps(urls))
    process = subprocess.Popen(
        [sys.executable, str(HERE / "bare_poll.py"), str(url_file), TOKEN, str(scan)]
    )
    try:
        await asyncio.sleep(min(scan, 10.0) + 2)  # its own start-up spread
        cpu0, polls0 = proc_cpu(process.pid), clock.polls
        await asyncio.sleep(window)
        cpu1, polls1 = proc_cpu(process.pid), clock.polls
    finally:
        process.terminate()
        process.wait(10)
    polls = polls1 - polls0
    return (cpu1 - cpu0) / polls * 1000 if polls else float("nan")


def percentile(values: list[float], q: float) -> float:
    if not values:
        return float("nan")
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(len(ordered) * q))]


def print_table(results: list[Result], args: Any) -> None:
    cpu = os.cpu_count()
    print(
        f"\nmachine: {platform.platform()}, {cpu} CPUs, Python {platform.python_version()}; "
        f"scan_interval {args.scan_interval} s, windows {args.window} s "
        f"(bare {args.bare_window} s)"
    )
    head = ("chargers", "polls/s cfg", "achieved", "gap p99", "CPU s/1k polls", "bare s/1k",
            "ratio", "RSS MiB", "peak MiB", "msgs/poll", "cmd p50 ms", "cmd p99 ms",
            "change mean", "change max", "startup s")  # fmt: skip
    rows = []
    for r in results:
        ratio = r.cpu_per_1000 / r.bare_cpu_per_1000 if r.bare_cpu_per_1000 else float("nan")
        if r.polls < MIN_POLLS_FOR_CPU:  # CPU time is counted in 10 ms ticks
            r.cpu_per_1000 = r.bare_cpu_per_1000 = ratio = float("nan")
        rows.append((
            str(r.n), f"{r.configured:.1f}", f"{r.achieved:.1f}", f"{r.gap_p99:.2f}x",
            f"{r.cpu_per_1000:.3f}", f"{r.bare_cpu_per_1000:.3f}", f"{ratio:.2f}",
            f"{r.rss:.1f}", f"{r.peak_rss:.1f}", f"{r.messages_per_poll:.4f}",
            f"{percentile(r.command_ms, 0.5):.1f}", f"{percentile(r.command_ms, 0.99):.1f}",
            f"{statistics.fmean(r.change_rel) if r.change_rel else float('nan'):.2f}x",
            f"{max(r.change_rel) if r.change_rel else float('nan'):.2f}x", f"{r.startup:.1f}",
        ))  # fmt: skip
    widths = [max(len(h), *(len(row[i]) for row in rows)) for i, h in enumerate(head)]
    print("| " + " | ".join(h.ljust(w) for h, w in zip(head, widths, strict=True)) + " |")
    print("|" + "|".join("-" * (w + 2) for w in widths) + "|")
    for row in rows:
        print("| " + " | ".join(c.rjust(w) for c, w in zip(row, widths, strict=True)) + " |")


async def main_async(args: Any) -> None:
    results = []
    for n in args.sizes:
        print(f"running {n} charger(s)...", file=sys.stderr, flush=True)
        results.append(await run_size(n, args))
    print_table(results, args)


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument(
        "--sizes", type=lambda s: [int(x) for x in s.split(",")], default=[1, 100, 1000]
    )
    parser.add_argument("--scan-interval", type=float, default=10.0)
    parser.add_argument(
        "--window", type=float, default=60.0, help="seconds of quiet polling measured"
    )
    parser.add_argument("--bare-window", type=float, default=30.0)
    parser.add_argument("--commands", type=int, default=40, help="commands timed per size")
    parser.add_argument("--changes", type=int, default=10, help="value changes timed per size")
    parser.add_argument("--seed", type=int, default=1)
    args = parser.parse_args()
    random.seed(args.seed)
    asyncio.run(main_async(args))


if __name__ == "__main__":
    main()
