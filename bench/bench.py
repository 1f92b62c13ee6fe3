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
import ssl
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

from goe2mqtt.bridge.loop_watch import LoopWatch
from goe2mqtt.bridge.memory import MemoryUpkeep
from goe2mqtt.sim.broker import MosquittoBroker
from goe2mqtt.sim.simulator import Faults, SimulatedCharger, Simulator
from goe2mqtt.util.logs import configure_logging

HERE = Path(__file__).resolve().parent
TOKEN = "bench-token"
BASE = "bench"
MIN_POLLS_FOR_CPU = 500
INFO_WAIT = 31.0  # s: bridge/info comes every 30 s


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
    expected: dict[str, float] = field(default_factory=dict)  # serial -> its poll interval

    def __call__(self, serial: str, call: str) -> None:
        now = time.monotonic()
        if call == "set":
            self.sets[serial] = now
            return
        self.polls += 1
        previous = self.last_poll.get(serial)
        if previous is not None and self.recording_gaps:
            self.gaps.append((now - previous) / self.expected.get(serial, 1.0))
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
    # For each command, ms since that charger's previous request arrived: a set that
    # comes within the injected latency of a poll waited for its answer (one
    # conversation with a charger at a time).
    since_poll_ms: list[float] = field(default_factory=list)
    change_rel: list[float] = field(default_factory=list)
    startup: float = 0.0
    on_time: float = 0.0  # share of polls within 10 % of their interval
    retained_discovery: float = 0.0  # KiB per charger the broker keeps for discovery
    retained_states: float = 0.0  # KiB per charger of states and availability
    new_connections_per_1000: float = float("nan")  # from the bridge's own counters
    polls: int = 0  # in the quiet window; CPU per poll needs enough of them to mean anything
    # From bridge/info over both windows: the longest the bridge's event loop was held,
    # the longest garbage collection, and how many full collections ran.
    loop_lag_max: float = float("nan")
    gc_pause_max: float = float("nan")
    gc_full: int = 0
    memory: dict[str, Any] = field(default_factory=dict)  # bridge/info's last "memory"
    bridge_loop: dict[str, Any] = field(default_factory=dict)  # ... and its last "loop"
    # The harness (simulator + probe, one process) while commands are timed: a busy
    # harness delays the set calls it timestamps, so its figures say how far to trust them.
    harness: dict[str, float] = field(default_factory=dict)


def serials(n: int) -> list[str]:
    return [f"{100000 + i:06d}" for i in range(n)]


def charger_url(simulator: Simulator, serial: str, fleet: bool) -> str:
    """Path routing on one host, or (fleet) the charger's own TLS host, as in the cloud."""
    if not fleet:
        return simulator.url_for(serial)
    port = simulator.base_url.rsplit(":", 1)[1]
    return f"https://{serial}.api.v3.go-e.io:{port}"


def write_config(
    path: Path, broker: MosquittoBroker, simulator: Simulator, n: int, scan: float, args: Any
) -> None:
    # Single-host mode measures the full load (idle = scan); fleet mode the real shape.
    idle = args.idle_interval if args.fleet else scan
    config = {
        "mqtt": {"host": broker.host, "port": broker.port, "base_topic": BASE,
                 "client_id": f"bench-{uuid.uuid4().hex[:6]}", "discovery_prefix": "bench-ha",
                 "discovery": not args.no_discovery, "leaf_topics": not args.no_leaf_topics},
        "chargers": [
            {"name": f"c{serial}", "serial": serial, "token": TOKEN,
             "api_url": charger_url(simulator, serial, args.fleet), "scan_interval": scan,
             "idle_scan_interval": idle}
            for serial in serials(n)
        ],
    }  # fmt: skip
    path.write_text(json.dumps(config))


def bridge_infos(
    messages: list[tuple[float, str, bytes]], start: float = 0.0, end: float = float("inf")
) -> list[dict[str, Any]]:
    """The bridge/info payloads the probe saw between start and end, oldest first."""
    return [json.loads(p) for t, topic, p in messages
            if topic == f"{BASE}/bridge/info" and p and start <= t <= end]  # fmt: skip


def pool_rate(messages: list[tuple[float, str, bytes]], start: float, end: float) -> float:
    """New connections per 1000 requests over a window, from bridge/info's counters."""
    inside = [info["http"] for info in bridge_infos(messages, start, end) if "http" in info]
    if len(inside) < 2:
        return float("nan")
    first, last = inside[0], inside[-1]
    requests = last["requests"] - first["requests"]
    created = last["new_connections"] - first["new_connections"]
    return 1000 * created / requests if requests else 0.0


def loop_stats(
    messages: list[tuple[float, str, bytes]], start: float, end: float
) -> tuple[float, float, int]:
    """(longest loop hold ms, longest collection ms, full collections) from bridge/info."""
    loops = [info["loop"] for info in bridge_infos(messages, start, end) if info.get("loop")]
    if not loops:
        return float("nan"), float("nan"), 0
    return (
        max(loop["lag_max_ms"] for loop in loops),
        max(loop["gc_pause_max_ms"] for loop in loops),
        sum(loop["gc_full_collections"] for loop in loops),
    )


def tls_setup(workdir: Path) -> tuple[ssl.SSLContext, dict[str, str]]:
    """A CA made for this run and a certificate for every charger's cloud host: the
    server's context, and the environment that makes a process trust the CA."""
    sys.path.insert(0, str(HERE.parent))
    from tests.certs import make_certificates

    certs = make_certificates(workdir, names="DNS:*.api.v3.go-e.io")
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    context.load_cert_chain(certs.server_cert, certs.server_key)
    return context, {**os.environ, "SSL_CERT_FILE": str(certs.ca)}


def launcher(args: Any) -> list[str]:
    """How processes that talk to the chargers start: directly, or with cloud hosts on
    loopback (fleet) and the connection policy under test."""
    if not args.fleet:
        return [sys.executable]
    policy = []
    if args.tls_buffer is not None:
        policy += ["--tls-buffer", str(args.tls_buffer)]
    if args.keepalive is not None:
        policy += ["--keepalive", str(args.keepalive)]
    if args.trace_holds is not None:
        policy += ["--trace-holds", str(args.trace_holds)]
    return [sys.executable, str(HERE / "loopback.py"), *policy]


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


async def bare_loop(
    simulator: Simulator, clock: PollClock, n: int, scan: float, args: Any, env: dict[str, str]
) -> float:
    """CPU seconds per 1000 polls of the bare fetch loop, in a process of its own."""
    window = args.bare_window
    urls = {charger_url(simulator, serial, args.fleet): clock.expected.get(serial, scan)
            for serial in serials(n)}  # fmt: skip
    url_file = Path(tempfile.mkdtemp(prefix="goe2mqtt-bare-")) / "urls.json"
    url_file.write_text(json.dumps(urls))
    bare = [str(HERE / "bare_poll.py"), str(url_file), TOKEN, str(scan)]
    if args.fleet:  # the floor the issue set: keep-alive 45 s, asyncio's own TLS buffers
        bare = [sys.executable, str(HERE / "loopback.py"), *bare, "45"]
    else:
        bare = [sys.executable, *bare]
    process = subprocess.Popen(bare, env=env)
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
