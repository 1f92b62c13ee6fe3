"""Benchmark: N websocket chargers authenticating, at a first start and at a restart.

Not a test: it prints a table. For each N: a Mosquitto of its own, bench/push.py's
websocket server in this process (N chargers on one port asking for the password hash
``--hash``; it does not check the proof: a real charger hashes on its own CPU, so here
only the bridge's hashing costs), and goe2mqtt as its own process, JSON state only,
with a state_dir of its own. Phase "first start": an empty state_dir; "restart": the
same process stopped (SIGTERM) once every charger was online and started again on the
same state_dir. Each phase is timed from the process's start to every charger
authenticated (the server saw its auth and sent the full status) and to every
charger's state on MQTT (published by this process, not a retained copy), with the
websocket connections the server accepted (one per charger is the goal: none closed
while its authentication waited), the connections the bridge closed for silence (its
log), the bridge's CPU seconds, and how busy the machine was meanwhile (the share of
its CPUs used by other processes than the bridge and this one: others share it).

    python bench/bench.py --push --restart --hash pbkdf2 --sizes 1000
    python bench/bench.py --push --restart --hash bcrypt --sizes 10000
    python bench/bench.py --push --restart --bridge-path /work/main   # another checkout
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import os
import signal
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import aiomqtt
import bridge_process
from push import BASE, proc_cpu, write_fleet_config
from push_server import PushServer, serials

from goe2mqtt.sim.broker import MosquittoBroker


@dataclass
class Phase:
    name: str
    n: int
    authenticated_s: float = float("nan")
    on_mqtt_s: float = float("nan")
    on_mqtt_sub_s: float = float("nan")  # the same, as mosquitto_sub saw it (no loop of ours)
    # full status sent -> that charger's first state on MQTT (mosquitto_sub), p50 / p99 / max
    status_to_mqtt: tuple[float, float, float] = (float("nan"),) * 3
    connects: int = 0
    silence_closes: int = 0
    cpu_s: float = float("nan")
    bench_cpu_s: float = float("nan")  # this process: the simulated chargers' server
    others_busy: float = float("nan")  # share of the machine's CPUs, 0-1
    load: str = ""
    note: str = ""


def cpu_ticks() -> tuple[int, int]:
    """(busy, total) jiffies of the whole machine."""
    fields = [int(x) for x in Path("/proc/stat").read_text().split("\n", 1)[0].split()[1:]]
    idle = fields[3] + fields[4]
    return sum(fields) - idle, sum(fields)


def loadavg() -> str:
    return " ".join(Path("/proc/loadavg").read_text().split()[:3])


async def run_phase(
    name: str,
    server: PushServer,
    broker: MosquittoBroker,
    workdir: Path,
    n: int,
    args: Any,
) -> Phase:
    phase = Phase(name, n, load=loadavg())
    on_mqtt: set[str] = set()
    server.connects = 0
    server.authenticated = authenticated = set()
    server.full_status_at = {}
    ready = asyncio.Event()

    async def listen() -> None:
        async with aiomqtt.Client(broker.host, broker.port) as client:
            await client.subscribe(f"{BASE}/+/state")
            ready.set()
            async for message in client.messages:
                charger = message.topic.value.split("/")[1]
                # this process's, not the last run's retained copy, nor the clock's sentinel
                if not message.retain and charger != READY_TOPIC:
                    on_mqtt.add(charger)

    listener = asyncio.create_task(listen())
    await ready.wait()
    sub_path = workdir / f"states-{name.replace(' ', '-')}.txt"
    sub = await start_state_clock(broker, sub_path)
    log_path = workdir / f"bridge-{name}.log"
    busy0, total0 = cpu_ticks()
    here0 = proc_cpu(os.getpid())
    started = time.monotonic()
    started_wall = time.time()
    profile = [args.profile, str(workdir / f"bridge-{name}.prof")] if args.profile else []
    bridge = bridge_process.start(
        bridge_process.tree_of(args.bridge_path),
        ["run", "-c", str(workdir / "config.json"), "--log-level", "warning"],
        log_path, python=profile,
    )  # fmt: skip
    spy = None
    if args.py_spy:  # a sampling profile of the bridge for the whole phase
        out = workdir / f"bridge-{name.replace(' ', '-')}.pyspy.txt"
        spy = subprocess.Popen(
            [args.py_spy, "record", "--pid", str(bridge.pid), "-r", "50", "-f", "raw",
             "--nonblocking", "-o", str(out)],
            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
        )  # fmt: skip
    try:
        while len(on_mqtt) < n or len(authenticated) < n:
            now = time.monotonic() - started
            if len(authenticated) == n and phase.authenticated_s != phase.authenticated_s:
                phase.authenticated_s, phase.connects = now, server.connects
            if len(on_mqtt) == n and phase.on_mqtt_s != phase.on_mqtt_s:
                phase.on_mqtt_s = now
            if bridge.poll() is not None:
                raise RuntimeError(f"the bridge ended ({bridge.returncode})")
            if now > args.connect_deadline:
                raise RuntimeError(f"{len(authenticated)} authenticated, {len(on_mqtt)} on MQTT"
                                   f" of {n} in {args.connect_deadline:.0f} s")  # fmt: skip
            await asyncio.sleep(0.1)
        now = time.monotonic() - started
        if phase.authenticated_s != phase.authenticated_s:
            phase.authenticated_s, phase.connects = now, server.connects
        if phase.on_mqtt_s != phase.on_mqtt_s:
            phase.on_mqtt_s = now
        phase.cpu_s = proc_cpu(bridge.pid)
        here = phase.bench_cpu_s = proc_cpu(os.getpid()) - here0
        busy1, total1 = cpu_ticks()
        tick = os.sysconf("SC_CLK_TCK")
        busy_s = (busy1 - busy0) / tick
        phase.others_busy = max(0.0, busy_s - phase.cpu_s - here) / ((total1 - total0) / tick)
        await asyncio.sleep(args.settle)  # the derived keys are written a few seconds later
    except RuntimeError as exc:
        phase.note = str(exc)
    finally:
        bridge_process.stop(bridge, 60)
        if spy is not None:
            spy.send_signal(signal.SIGINT)
            spy.wait(60)
        listener.cancel()
        with contextlib.suppress(asyncio.CancelledError, aiomqtt.MqttError):
            await listener
        sub.terminate()
        sub.wait(10)
        seen = first_states(sub_path)
        if len(seen) == n:
            phase.on_mqtt_sub_s = max(seen.values()) - started_wall
        phase.status_to_mqtt = spread(
            [seen[c] - server.full_status_at[c[1:]] for c in seen if c[1:] in server.full_status_at]
        )
        for socket in list(server.open.values()):
            await socket.close()
        server.open.clear()
    phase.silence_closes = log_path.read_text(errors="replace").count("no message for")
    return phase


async def start_state_clock(broker: MosquittoBroker, path: Path) -> subprocess.Popen[bytes]:
    """mosquitto_sub writing each live state's arrival time: a clock that this process's
    loop, busy serving the chargers, cannot delay. Returns once it is subscribed."""
    out = path.open("wb")
    sub = subprocess.Popen(
        ["mosquitto_sub", "-h", broker.host, "-p", str(broker.port), "-t", f"{BASE}/+/state",
         "-R", "-F", "%U %t"],
        stdout=out,
    )  # fmt: skip
    out.close()
    async with aiomqtt.Client(broker.host, broker.port) as client:
        while READY_TOPIC not in path.read_text():
            await client.publish(f"{BASE}/{READY_TOPIC}/state", b"1")
            await asyncio.sleep(0.05)
    return sub


READY_TOPIC = "_clock_ready_"


def first_states(path: Path) -> dict[str, float]:
    """Each charger's first live state, in unix time, as mosquitto_sub saw it."""
    first: dict[str, float] = {}
    for line in path.read_text().splitlines():
        stamp, _, topic = line.partition(" ")
        charger = topic.split("/")[1] if topic.count("/") == 2 else ""
        if charger and charger != READY_TOPIC and charger not in first:
            first[charger] = float(stamp)
    return first


def spread(values: list[float]) -> tuple[float, float, float]:
    """p50, p99 and max; nan for none."""
    if not values:
        return (float("nan"),) * 3
    ordered = sorted(values)
    return (ordered[len(ordered) // 2], ordered[min(len(ordered) - 1, len(ordered) * 99 // 100)],
            ordered[-1])  # fmt: skip


async def run_size(n: int, args: Any) -> list[Phase]:
    chargers = serials(n)
    server = PushServer(chargers, hash_kind=args.hash)
    await server.start()
    ticker = asyncio.create_task(server.tick_forever())
    workdir = Path(tempfile.mkdtemp(prefix="goe2mqtt-restart-"))
    url = f"http://127.0.0.1:{server.port}"
    phases = []
    with MosquittoBroker() as broker:
        write_fleet_config(workdir, broker, url, chargers, "restart", args.scan_interval)
        for name in ("first start", "restart"):
            print(f"  {n} chargers ({args.hash}): {name}...", file=sys.stderr, flush=True)
            phases.append(await run_phase(name, server, broker, workdir, n, args))
            print(f"  {phases[-1]}", file=sys.stderr, flush=True)
    ticker.cancel()
    assert server.runner is not None
    await server.runner.cleanup()
    print(f"  state_dir: {workdir}", file=sys.stderr)
    return phases


def print_table(phases: list[Phase], args: Any) -> None:
    tree = bridge_process.tree_of(args.bridge_path)
    print(f"hash: {args.hash}; bridge from: {bridge_process.source(tree)}")
    print("| chargers | phase | all authenticated s | all states on MQTT s"
          " | the same by mosquitto_sub s | a charger's full status -> its state p50/p99/max s"
          " | connects per charger"
          " | closed for silence | bridge CPU s | bench (server) CPU s | others' CPU share"
          " | load avg |")  # fmt: skip
    print("|---:|---|---:|---:|---:|---|---:|---:|---:|---:|---:|---|")
    for p in phases:
        print(
            f"| {p.n} | {p.name} | {p.authenticated_s:.1f} | {p.on_mqtt_s:.1f} |"
            f" {p.on_mqtt_sub_s:.1f} | {'/'.join(f'{v:.2f}' for v in p.status_to_mqtt)} |"
            f" {p.connects / p.n:.2f} | {p.silence_closes} | {p.cpu_s:.1f} | {p.bench_cpu_s:.1f} |"
            f" {100 * p.others_busy:.0f} % | {p.load} |{(' ' + p.note) if p.note else ''}"
        )


async def main_async(args: Any) -> None:
    phases: list[Phase] = []
    for n in args.sizes:
        phases += await run_size(n, args)
    print_table(phases, args)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--restart", action="store_true", help="this benchmark (bench.py --push)")
    parser.add_argument("--sizes", type=lambda s: [int(x) for x in s.split(",")], default=[1000])
    parser.add_argument("--hash", choices=("pbkdf2", "bcrypt"), default="pbkdf2")
    parser.add_argument("--bridge-path", default="", help="the tree the bridge runs from")
    parser.add_argument("--settle", type=float, default=10.0,
                        help="seconds the bridge runs on after all are online")  # fmt: skip
    parser.add_argument("--connect-deadline", type=float, default=900.0)
    parser.add_argument("--scan-interval", type=float, default=10.0,
                        help="polls of the HTTP fallback while a socket is not live")  # fmt: skip
    parser.add_argument("--profile", default="",
                        help="run the bridge as: python PROFILE OUT -m goe2mqtt ...")  # fmt: skip
    parser.add_argument("--py-spy", default="",
                        help="path of py-spy: a raw profile of the bridge per phase, in the run's"
                             " directory (bridge-PHASE.pyspy.txt)")  # fmt: skip
    asyncio.run(main_async(parser.parse_args(argv)))


if __name__ == "__main__":
    main()
