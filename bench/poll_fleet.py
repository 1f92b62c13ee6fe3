"""bench/bench.py's polled fleet: the chargers, their config, what the simulator and
bridge/info tell of a run (polls and their gaps, new connections, loop holds), and how
the bridge process is started (directly, or with the cloud's hosts on loopback), and
the limit: the bare fetch loop's CPU per poll (bench/bare_poll.py).

page.py, scrape.py and scrape_loop.py take serials, PollClock and proc_cpu from here too.
"""

from __future__ import annotations

import asyncio
import json
import os
import ssl
import subprocess
import sys
import tempfile
import time
import uuid
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from procstat import proc_cpu as proc_cpu

from goe2mqtt.sim.broker import MosquittoBroker
from goe2mqtt.sim.simulator import Simulator

HERE = Path(__file__).resolve().parent
TOKEN = "bench-token"
BASE = "bench"
MIN_POLLS_FOR_CPU = 500
INFO_WAIT = 31.0  # s: bridge/info comes every 30 s


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
