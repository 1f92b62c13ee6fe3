"""Benchmark: goe2mqtt polling N simulated chargers, against a bare aiohttp loop.

Not a test: it prints a table. For each N it starts a Mosquitto of its own (with
set_tcp_nodelay true, as contrib/mosquitto.conf) and the simulated cloud serving N
chargers on one port (here, in this process, so it can time requests), runs goe2mqtt
as its own process (so its CPU and memory are its own) and measures over a fixed
window:

- polls/s achieved vs configured, and the p99 gap between two polls of a charger
  relative to scan_interval (1.0 = every poll on time);
- CPU seconds per 1000 polls and peak RSS of the goe2mqtt process;
- MQTT messages per poll while nothing changes (must be ~0);
- command latency: a client publishes a command -> the simulator receives the set,
  and the five slowest with the time since that charger's last poll (a set within the
  injected latency of a poll waited for its answer);
- change latency: a value changes in the simulator -> the new value on MQTT,
  relative to scan_interval.

Then the limit: a bare aiohttp loop (bench/bare_poll.py) that only fetches the same
N statuses with the same concurrency; goe2mqtt's CPU per poll divided by the bare
loop's is the ratio we track.

    python bench/bench.py                 # N = 1, 100, 1000; 60 s windows
    python bench/bench.py --sizes 1000 --window 120
    python bench/bench.py --push          # chargers on websockets instead (bench/push.py)
    python bench/bench.py --idle-rss      # one idle charger's RSS vs the stack floor
"""

from __future__ import annotations

import argparse
import asyncio
import heapq
import json
import os
import platform
import random
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import aiomqtt
from poll_fleet import (
    BASE,
    INFO_WAIT,
    MIN_POLLS_FOR_CPU,
    TOKEN,
    PollClock,
    Result,
    bare_loop,
    bridge_infos,
    launcher,
    loop_stats,
    pool_rate,
    proc_memory,
    serials,
    tls_setup,
    write_config,
)
from procstat import percentile, proc_cpu

from goe2mqtt.bridge.loop_watch import LoopWatch
from goe2mqtt.bridge.memory import MemoryUpkeep
from goe2mqtt.sim.broker import MosquittoBroker
from goe2mqtt.sim.simulator import Faults, SimulatedCharger, Simulator
from goe2mqtt.util.logs import configure_logging


async def run_size(n: int, args: Any) -> Result:
    scan = args.scan_interval
    result = Result(n, scan, configured=n / scan)
    chargers = [SimulatedCharger(serial, TOKEN) for serial in serials(n)]
    simulator = Simulator(chargers)
    clock = PollClock()
    simulator.observers.append(clock)
    workdir = Path(tempfile.mkdtemp(prefix="goe2mqtt-bench-"))
    server_tls, env = tls_setup(workdir) if args.fleet else (None, dict(os.environ))
    for index, charger in enumerate(chargers):
        active = not args.fleet or index < round(n * (1 - args.idle_share))
        if active:
            charger.plug_in()
        clock.expected[charger.serial] = scan if active else args.idle_interval
        if args.latency_max:
            latency = random.uniform(args.latency_min, args.latency_max) / 1000
            charger.faults = Faults(delay=latency)
    result.configured = sum(1 / interval for interval in clock.expected.values())
    await simulator.start(ssl_context=server_tls)
    # The harness keeps its collector short the bridge's way (goe2mqtt.bridge.memory): its full
    # collections took 570 ms at 10 000 chargers, stalling the simulator, which then
    # timestamped set calls late and answered a burst of polls at once.
    harness_stop = asyncio.Event()
    harness_upkeep = asyncio.create_task(
        MemoryUpkeep().run(harness_stop, ready=lambda: True, at_most=0)
    )
    with MosquittoBroker(extra_config=("set_tcp_nodelay true",)) as broker:
        config = workdir / "config.yaml"
        write_config(config, broker, simulator, n, scan, args)
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
                [*launcher(args), "-m", "goe2mqtt", "--config", str(config),
                 "--log-level", "warning", "--log-format", "json"],
                stdout=open(workdir / "bridge.log", "wb"), stderr=subprocess.STDOUT, env=env,
            )  # fmt: skip
            try:
                await asyncio.wait_for(all_online.wait(), 120 + n / 10)
                result.startup = time.monotonic() - started
                # Let the start-up flood (discovery, first states) drain and every
                # charger settle into its schedule before measuring.
                await asyncio.sleep(2 * scan)
                # What the broker retains per charger: the last payload of each topic.
                retained: dict[str, bytes] = {m[1]: m[2] for m in messages}
                result.retained_discovery = (
                    sum(len(t) + len(p) for t, p in retained.items() if t.startswith("bench-ha/"))
                    / n
                    / 1024
                )
                result.retained_states = (
                    sum(len(t) + len(p) for t, p in retained.items() if t.startswith(f"{BASE}/c"))
                    / n
                    / 1024
                )

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
                result.gap_p99 = gaps[int(len(gaps) * 0.99)] if gaps else float("nan")
                # On time: within 10 % (plus the injected latency) of the charger's interval.
                slack = 1.1 + args.latency_max / 1000 / scan
                result.on_time = sum(1 for g in gaps if g <= slack) / len(gaps) if gaps else 0.0
                result.new_connections_per_1000 = pool_rate(messages, t0, t0 + elapsed)

                # Active window: commands and changes while the fleet keeps polling.
                watch, cpu0, t_cmd = LoopWatch(), proc_cpu(os.getpid()), time.monotonic()
                watching = asyncio.create_task(watch.run())
                await measure_latencies(probe, simulator, messages, result, args)
                held = watch.report()
                watching.cancel()
                result.harness = {
                    "cpu_share": round(
                        (proc_cpu(os.getpid()) - cpu0) / (time.monotonic() - t_cmd), 2
                    ),
                    "loop_held_max_ms": held["lag_max_ms"],
                    "gc_pause_max_ms": held["gc_pause_max_ms"],
                }
                result.rss, result.peak_rss = proc_memory(bridge.pid)
                # bridge/info reports the loop since its last report: one more is due.
                await asyncio.sleep(INFO_WAIT)
                result.loop_lag_max, result.gc_pause_max, result.gc_full = loop_stats(
                    messages, t0, time.monotonic()
                )
                infos = bridge_infos(messages)
                last = infos[-1] if infos else {}
                result.memory, result.bridge_loop = last.get("memory", {}), last.get("loop", {})
            finally:
                bridge.terminate()
                bridge.wait(30)
                consumer.cancel()
    result.bare_cpu_per_1000 = await bare_loop(simulator, clock, n, scan, args, env)
    harness_stop.set()
    await harness_upkeep
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
            since_poll = clock.sets[serial] - clock.last_poll.get(serial, 0.0)
            result.since_poll_ms.append(since_poll * 1000)
        await asyncio.sleep(0.2)
    for _ in range(args.changes):
        serial = random.choice(names)
        charger = simulator.charger(serial)
        value = b"false" if charger.plugged else b"true"
        if args.no_leaf_topics:  # the JSON state topic only
            topic, seen = f"{BASE}/c{serial}/state", b'"car_connected": ' + value
        else:  # the leaf topic's whole payload
            topic, seen = f"{BASE}/c{serial}/car_connected", value
        mark = len(messages)
        changed = time.monotonic()
        charger.unplug() if charger.plugged else charger.plug_in()
        deadline = changed + 4 * scan
        while time.monotonic() < deadline:
            hit = next((m for m in messages[mark:] if m[1] == topic and seen in m[2]), None)
            if hit is not None:
                result.change_rel.append((hit[0] - changed) / scan)
                break
            await asyncio.sleep(0.01)


def print_table(results: list[Result], args: Any) -> None:
    cpu = os.cpu_count()
    print(
        f"\nmachine: {platform.platform()}, {cpu} CPUs, Python {platform.python_version()}; "
        f"scan_interval {args.scan_interval} s, windows {args.window} s "
        f"(bare {args.bare_window} s)"
    )
    if args.fleet:
        print(
            f"fleet: one TLS host per charger, {100 * args.idle_share:.0f} % idle "
            f"(idle_scan_interval {args.idle_interval} s), latency "
            f"{args.latency_min:.0f}-{args.latency_max:.0f} ms, tls buffer "
            f"{args.tls_buffer or 'default'}, keep-alive {args.keepalive or 'default'}, "
            f"discovery {'off' if args.no_discovery else 'on'}, "
            f"leaf topics {'off' if args.no_leaf_topics else 'on'}"
        )
    head = ("chargers", "polls/s cfg", "achieved", "gap p99", "CPU s/1k polls", "bare s/1k",
            "ratio", "RSS MiB", "peak MiB", "msgs/poll", "cmd p50 ms", "cmd p99 ms",
            "change mean", "change max", "startup s", "on time", "new conn/1k",
            "retained KiB/charger (discovery + states)", "loop held max ms", "gc max ms",
            "full gcs")  # fmt: skip
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
            f"{100 * r.on_time:.2f}%", f"{r.new_connections_per_1000:.1f}",
            f"{r.retained_discovery:.1f} + {r.retained_states:.1f}",
            f"{r.loop_lag_max:.1f}", f"{r.gc_pause_max:.1f}", str(r.gc_full),
        ))  # fmt: skip
    widths = [max(len(h), *(len(row[i]) for row in rows)) for i, h in enumerate(head)]
    print("| " + " | ".join(h.ljust(w) for h, w in zip(head, widths, strict=True)) + " |")
    print("|" + "|".join("-" * (w + 2) for w in widths) + "|")
    for row in rows:
        print("| " + " | ".join(c.rjust(w) for c, w in zip(row, widths, strict=True)) + " |")
    for r in results:
        print(f"{r.n} chargers, bridge memory upkeep (bridge/info): {json.dumps(r.memory)}")
        print(f"{r.n} chargers, bridge loop, last report: {json.dumps(r.bridge_loop)}")
        print(f"{r.n} chargers, harness while commands were timed: {json.dumps(r.harness)}")
        slowest = ", ".join(
            f"{ms:.1f} ({since:.0f})"
            for ms, since in heapq.nlargest(5, zip(r.command_ms, r.since_poll_ms, strict=True))
        )
        print(f"{r.n} chargers, slowest commands ms (ms since the charger's last poll): {slowest}")


async def main_async(args: Any) -> None:
    results = []
    for n in args.sizes:
        print(f"running {n} charger(s)...", file=sys.stderr, flush=True)
        results.append(await run_size(n, args))
    print_table(results, args)


def main() -> None:
    if "--push" in sys.argv[1:] and "--restart" in sys.argv[1:]:  # bench/push_restart.py
        import push_restart

        push_restart.main([arg for arg in sys.argv[1:] if arg != "--push"])
        return
    if "--push" in sys.argv[1:]:  # the websocket benchmark: bench/push.py
        import push

        push.main([arg for arg in sys.argv[1:] if arg != "--push"])
        return
    if "--idle-rss" in sys.argv[1:]:  # one idle charger's memory: bench/idle_rss.py
        import idle_rss

        idle_rss.main([arg for arg in sys.argv[1:] if arg != "--idle-rss"])
        return
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
    fleet = parser.add_argument_group("fleet mode: the cloud's shape")
    fleet.add_argument(
        "--fleet",
        action="store_true",
        help="one TLS host per charger ({serial}.api.v3.go-e.io on loopback, "
        "a CA made for the run), idle and car-connected chargers mixed",
    )
    fleet.add_argument("--idle-share", type=float, default=0.8)
    fleet.add_argument("--idle-interval", type=float, default=30.0)
    fleet.add_argument("--latency-min", type=float, default=0.0, help="ms per request")
    fleet.add_argument("--latency-max", type=float, default=0.0, help="ms per request")
    fleet.add_argument(
        "--tls-buffer",
        type=int,
        default=None,
        help="bytes: override the bridge's TLS read buffer (policy table)",
    )
    fleet.add_argument(
        "--keepalive",
        type=float,
        default=None,
        help="s: override the bridge's keep-alive (policy table)",
    )
    fleet.add_argument(
        "--trace-holds",
        type=float,
        default=None,
        help="ms: the bridge logs every event-loop callback longer than this "
        "(to bridge.log in the run's directory)",
    )
    fleet.add_argument("--no-discovery", action="store_true", help="discovery: false")
    fleet.add_argument(
        "--no-leaf-topics",
        action="store_true",
        help="leaf_topics: false (the JSON state only; needs --no-discovery)",
    )
    args = parser.parse_args()
    configure_logging("warning")  # the harness's own memory upkeep logs at debug
    random.seed(args.seed)
    asyncio.run(main_async(args))


if __name__ == "__main__":
    main()
