"""Benchmark: how long a SIGTERM takes to end a bridge of N websocket chargers.

Not a test: it prints a table. For each N: a Mosquitto of its own, bench/push.py's
websocket server in this process (N chargers on one port), and goe2mqtt as its own
process on a state_dir of its own (kept across the phases: the derived keys make every
start after the first a quick one). For each broker mode the bridge is started, every
charger's state awaited on MQTT (published by this process, not a retained copy), left
running ``--settle`` s, then the broker is left ``alive``, ``frozen`` (SIGSTOP: the TCP
connection stays, nothing is answered) or ``killed`` (SIGKILL), and the bridge gets
SIGTERM. Timed: SIGTERM to the process's exit (a bridge still running after
``--kill-after`` s is killed, as Docker and Kubernetes do after their grace period: the
table says so), with the bridge's own account of its stop when it logs one (the stages
of its `bridge_stopped` line, or the `stop_stage` lines of an instrumented tree), and
the load average when the SIGTERM went.

    python bench/stop.py --sizes 1000
    python bench/stop.py --sizes 1000 --bridge-path /work/wt/base   # another checkout
    flock /tmp/bench.lock python bench/stop.py --sizes 10000 --modes frozen
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import aiomqtt
import bridge_process
from push import BASE, write_fleet_config
from push_restart import loadavg
from push_server import PushServer, serials

from goe2mqtt.sim.broker import MosquittoBroker

MODES = ("alive", "frozen", "killed")


@dataclass
class Stop:
    n: int
    mode: str
    online_s: float = float("nan")
    stop_s: float = float("nan")
    code: int | None = None
    killed: bool = False
    load: str = ""
    stages: str = ""
    note: str = ""


def stages_of(log: Path) -> str:
    """The bridge's account of its stop: its stages and their seconds, as it logged them."""
    found = []
    for line in log.read_text(errors="replace").splitlines():
        with contextlib.suppress(ValueError):
            event = json.loads(line)
            if not isinstance(event, dict):
                continue
            if event.get("event") == "stop_stage":  # an instrumented tree's
                found.append(f"{event['stage'].split('(')[0][:28]} @{event['s']}")
            elif event.get("event") == "bridge_stopped" and "stages" in event:
                found.append(" ".join(f"{k} {v}" for k, v in event["stages"].items()))
    return "; ".join(found)


async def until_on_mqtt(broker: MosquittoBroker, n: int, within: float, bridge: Any) -> float:
    on_mqtt: set[str] = set()
    ready = asyncio.Event()

    async def listen() -> None:
        async with aiomqtt.Client(broker.host, broker.port) as client:
            await client.subscribe(f"{BASE}/+/state")
            ready.set()
            async for message in client.messages:
                if not message.retain:  # this process's, not the last run's retained copy
                    on_mqtt.add(message.topic.value.split("/")[1])

    listener = asyncio.create_task(listen())
    started = time.monotonic()
    try:
        await ready.wait()
        while len(on_mqtt) < n:
            if bridge.poll() is not None:
                raise RuntimeError(f"the bridge ended ({bridge.returncode})")
            if time.monotonic() - started > within:
                raise RuntimeError(f"{len(on_mqtt)} of {n} on MQTT in {within:.0f} s")
            await asyncio.sleep(0.1)
        return time.monotonic() - started
    finally:
        listener.cancel()
        with contextlib.suppress(asyncio.CancelledError, aiomqtt.MqttError):
            await listener


async def run_mode(
    mode: str, server: PushServer, broker: MosquittoBroker, workdir: Path, n: int, args: Any
) -> Stop:
    result = Stop(n, mode)
    log_path = workdir / f"bridge-{mode}.log"
    bridge = bridge_process.start(
        bridge_process.tree_of(args.bridge_path),
        ["run", "-c", str(workdir / "config.json"), "--log-level", "info",
         "--log-format", "json"],
        log_path,
    )  # fmt: skip
    try:
        result.online_s = await until_on_mqtt(broker, n, args.connect_deadline, bridge)
        await asyncio.sleep(args.settle)
        if mode == "frozen":
            broker.pause()
        elif mode == "killed":
            broker.kill()
        result.load = loadavg()
        started = time.monotonic()
        bridge.terminate()
        while bridge.poll() is None and time.monotonic() - started < args.kill_after:
            await asyncio.sleep(0.05)
        result.stop_s = time.monotonic() - started
        if bridge.poll() is None:
            bridge.kill()
            result.killed = True
        result.code = bridge.wait()
    except RuntimeError as exc:
        result.note = str(exc)
    finally:
        if bridge.poll() is None:
            bridge.kill()
            bridge.wait()
        if mode == "frozen":
            broker.resume()
        elif mode == "killed":
            broker.start()
        for socket in list(server.open.values()):
            await socket.close()
        server.open.clear()
    result.stages = stages_of(log_path)
    return result


async def run_size(n: int, args: Any) -> list[Stop]:
    chargers = serials(n)
    server = PushServer(chargers, hash_kind=args.hash)
    await server.start()
    ticker = asyncio.create_task(server.tick_forever())
    workdir = Path(tempfile.mkdtemp(prefix="goe2mqtt-stop-"))
    url = f"http://127.0.0.1:{server.port}"
    results = []
    with MosquittoBroker() as broker:
        write_fleet_config(workdir, broker, url, chargers, "stop", args.scan_interval)
        for mode in args.modes:
            print(f"  {n} chargers, broker {mode}...", file=sys.stderr, flush=True)
            results.append(await run_mode(mode, server, broker, workdir, n, args))
            print(f"  {results[-1]}", file=sys.stderr, flush=True)
    ticker.cancel()
    assert server.runner is not None
    await server.runner.cleanup()
    print(f"  state_dir: {workdir}", file=sys.stderr)
    return results


def print_table(results: list[Stop], args: Any) -> None:
    tree = bridge_process.tree_of(args.bridge_path)
    print(f"bridge from: {bridge_process.source(tree)}; killed after {args.kill_after:.0f} s")
    print("| chargers | broker | all on MQTT s | SIGTERM to exit s | exit | load avg | stages |")
    print("|---:|---|---:|---:|---|---|---|")
    for r in results:
        end = "SIGKILL" if r.killed else str(r.code)
        print(
            f"| {r.n} | {r.mode} | {r.online_s:.1f} | {r.stop_s:.1f} | {end} | {r.load} |"
            f" {r.stages} |{(' ' + r.note) if r.note else ''}"
        )


async def main_async(args: Any) -> None:
    results: list[Stop] = []
    for n in args.sizes:
        results += await run_size(n, args)
    print_table(results, args)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--sizes", type=lambda s: [int(x) for x in s.split(",")], default=[1000])
    parser.add_argument("--modes", type=lambda s: s.split(","), default=list(MODES),
                        help="broker at the SIGTERM: alive, frozen, killed")  # fmt: skip
    parser.add_argument("--hash", choices=("pbkdf2", "bcrypt"), default="bcrypt")
    parser.add_argument("--bridge-path", default="", help="the tree the bridge runs from")
    parser.add_argument("--settle", type=float, default=5.0,
                        help="seconds the bridge runs on after all are on MQTT")  # fmt: skip
    parser.add_argument("--kill-after", type=float, default=90.0,
                        help="SIGKILL a bridge still running this long after SIGTERM")  # fmt: skip
    parser.add_argument("--connect-deadline", type=float, default=900.0)
    parser.add_argument("--scan-interval", type=float, default=10.0)
    args = parser.parse_args(argv)
    if unknown := set(args.modes) - set(MODES):
        parser.error(f"unknown modes: {', '.join(sorted(unknown))}")
    asyncio.run(main_async(args))


if __name__ == "__main__":
    main()
