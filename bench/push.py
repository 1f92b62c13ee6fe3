"""Benchmark: goe2mqtt on N chargers' websockets, against a bare websocket reader.

Not a test: it prints a table. For each N: a Mosquitto of its own; a lean websocket
server in this process that speaks the charger's protocol (hello, bcrypt auth,
fullStatus, then a deltaStatus per charger every second: utc and rbt, which no
entity shows, and for a few chargers a new charging current, which is timed from
the frame sent to the value on MQTT); goe2mqtt as its own process (transport
websocket, the cloud's URL form on loopback). Then bench/bare_push.py - the same
connections, the same auth and the same frames parsed, nothing else - is the floor,
in the same run.

With discovery on, Home Assistant's birth message follows (bench/push_birth.py).

    python bench/bench.py --push                   # N = 1, 1000; 30 s windows
    python bench/bench.py --push --sizes 10000 --window 60
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import random
import subprocess
import sys
import tempfile
import time
import uuid
from pathlib import Path
from typing import Any

import aiomqtt
import bridge_process
from procstat import percentile, proc_cpu, proc_rss
from push_birth import home_assistant_restarts
from push_result import Result, print_table
from push_server import CHANGES_PER_SECOND, PushServer, serials

from goe2mqtt.bridge.loop_watch import LoopWatch
from goe2mqtt.bridge.memory import MemoryUpkeep
from goe2mqtt.sim.broker import MosquittoBroker

HERE = Path(__file__).resolve().parent
TOKEN = "bench-token"
PASSWORD = "bench-password"
BASE = "benchpush"
PREFIX = "push-ha"  # the discovery prefix
PY_SPY = os.environ.get("PY_SPY", "py-spy")  # e.g. PY_SPY=/work/tools/bin/py-spy


def write_fleet_config(
    workdir: Path, broker: Any, url: str, chargers: list[str], name: str, scan_interval: float
) -> None:
    """{workdir}/config.json: these chargers' websockets at ``url``, JSON state only, no
    HTTP, a client id of its own (``name``-...) on ``broker``."""
    config = {
        "mqtt": {"host": broker.host, "port": broker.port, "base_topic": BASE,
                 "client_id": f"{name}-{uuid.uuid4().hex[:6]}", "discovery": False,
                 "leaf_topics": False},
        "state_dir": str(workdir),
        "http": {"enabled": False},  # others may run a bridge on this machine
        "chargers": [{"name": f"c{s}", "serial": s, "token": TOKEN, "password": PASSWORD,
                      "transport": "websocket", "api_url": f"{url}/{s}",
                      "scan_interval": scan_interval}
                     for s in chargers],
    }  # fmt: skip
    (workdir / "config.json").write_text(json.dumps(config))


def latency_window(window: float) -> float:  # the change latency's window
    return min(window, 20)


PROFILERS: list[subprocess.Popen[bytes]] = []  # py-spy, still recording
INFO_WAIT = 90.0  # s: bridge/info is published every 30 s


async def measure(
    process: subprocess.Popen[bytes],
    server: PushServer,
    n: int,
    window: float,
    settle: float,
    deadline: float,
    published: list[int] | None = None,
    infos: list[tuple[float, dict[str, Any]]] | None = None,
    profile: Path | None = None,
) -> tuple[float, float, float]:
    """(seconds to connect all, CPU us per delta, RSS MiB) of a process reading N sockets;
    with ``published`` (the MQTT messages seen so far, discovery's too) only once the
    start-up's burst is over: under CHANGES_PER_SECOND * 4 messages a second, 3 s long,
    and (``infos``, the bridge/info reports) the bridge owes the broker nothing (a loaded
    machine can hold a bridge still for 3 s). With ``profile``: py-spy's samples of the
    window there (speedscope: in order, so a hold is a run of one stack)."""
    started = time.monotonic()
    while len(server.open) < n:
        if process.poll() is not None:
            raise RuntimeError(f"the process ended ({process.returncode})")
        if time.monotonic() - started > deadline:
            raise RuntimeError(f"only {len(server.open)} of {n} connected in {deadline:.0f} s")
        await asyncio.sleep(0.2)
    connected = time.monotonic() - started
    await asyncio.sleep(settle)
    quiet_seconds = 0
    while published is not None and quiet_seconds < 3:
        if time.monotonic() - started > deadline:
            raise RuntimeError(f"MQTT output never went quiet in {deadline:.0f} s")
        before = published[0]
        await asyncio.sleep(1.0)
        # Nothing yet is not quiet: the bridge first looks for another live instance.
        quiet = published[0] > 0 and published[0] - before < 4 * CHANGES_PER_SECOND
        quiet_seconds = quiet_seconds + 1 if quiet else 0
        if quiet_seconds == 3 and infos is not None:
            quiet_at = time.monotonic()
            while not any(at > quiet_at for at, _ in infos):  # bridge/info: every 30 s
                if time.monotonic() - quiet_at > INFO_WAIT:
                    # Said, and measured all the same: a bridge whose bridge/info never
                    # gets out owes the broker its backlog, which the window then shows.
                    print(f"  no bridge/info {INFO_WAIT:.0f} s after the quiet: measuring",
                          file=sys.stderr, flush=True)  # fmt: skip
                    break
                await asyncio.sleep(0.2)
            if infos and infos[-1][0] > quiet_at and infos[-1][1].get("mqtt_backlog"):
                quiet_seconds = 0
    cpu0, deltas0 = proc_cpu(process.pid), server.deltas
    profiler = None
    if profile is not None:  # py-spy over the window (it pauses the process briefly per sample)
        profiler = subprocess.Popen(
            [PY_SPY, "record", "--pid", str(process.pid), "-r", "50",
             "-d", str(int(window + latency_window(window))),
             "-f", "speedscope", "-o", str(profile), "--nonblocking", "--idle"],
            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
        )  # fmt: skip
    await asyncio.sleep(window)
    cpu1, deltas1 = proc_cpu(process.pid), server.deltas
    per_delta = 1e6 * (cpu1 - cpu0) / max(1, deltas1 - deltas0)
    if profiler is not None:  # it goes on over the latency window: see run_size
        PROFILERS.append(profiler)
    return connected, per_delta, proc_rss(process.pid)


async def run_size(n: int, args: Any) -> Result:
    result = Result(n)
    harness_watch = LoopWatch()
    chargers = serials(n)
    server = PushServer(chargers)
    await server.start()
    ticker = asyncio.create_task(server.tick_forever())
    workdir = Path(tempfile.mkdtemp(prefix="goe2mqtt-push-"))
    url = f"http://127.0.0.1:{server.port}"
    # The harness (10 000 server sockets, the ticker, the listener that times changes) is
    # one process too: with Python's own collector its full collections held it, and
    # a change was stamped sent, or seen, late. It keeps its collector short the
    # bridge's way, as bench/bench.py --fleet does; its loop watch says how long it was
    # held while measuring (it should be small beside the bridge's figures).
    harness_stop = asyncio.Event()
    harness_tasks = [asyncio.create_task(harness_watch.run())]
    if args.harness_gc == "upkeep":
        harness_tasks.append(asyncio.create_task(
            MemoryUpkeep().run(harness_stop, ready=lambda: True, at_most=0)))  # fmt: skip
    # As the fleet bench's broker: Nagle's delay on the listener's socket is no latency
    # of the bridge's.
    with MosquittoBroker(extra_config=("set_tcp_nodelay true",)) as broker:
        config = {
            "mqtt": {"host": broker.host, "port": broker.port, "base_topic": BASE,
                     "client_id": f"push-{uuid.uuid4().hex[:6]}", "discovery_prefix": PREFIX,
                     "discovery": not args.json_only, "leaf_topics": not args.json_only},
            "state_dir": str(workdir),
            "http": {"listen": "127.0.0.1:0"},  # any free port: other benches may run
            "chargers": [{"name": f"c{s}", "serial": s, "token": TOKEN, "password": PASSWORD,
                          "transport": "websocket", "api_url": f"{url}/{s}"}
                         for s in chargers],
        }  # fmt: skip
        (workdir / "config.json").write_text(json.dumps(config))
        latencies: list[float] = []
        received = [0]
        configs: dict[str, bool] = {}  # discovery topic -> it holds a config
        infos: list[tuple[float, dict[str, Any]]] = []  # bridge/info, when it came

        lost = [0]  # the listener's connections lost (a busy harness, a loaded broker)
        listening: list[aiomqtt.Client] = []

        async def listen() -> None:
            """What the measures need, not every state (half the start-up's messages):
            configs, the changing current, bridge/info; again after a lost connection."""
            leaf = "state" if args.json_only else "charging_current"
            wanted = [f"{BASE}/bridge/info", f"{PREFIX}/#", f"{BASE}/+/{leaf}"]
            while True:
                try:
                    async with aiomqtt.Client(broker.host, broker.port, keepalive=300) as client:
                        for topic in wanted:
                            await client.subscribe(topic)
                        listening[:] = [client]
                        async for message in client.messages:
                            take(message)
                except aiomqtt.MqttError:
                    lost[0] += 1
                    await asyncio.sleep(1.0)

        def take(message: aiomqtt.Message) -> None:
            received[0] += 1
            topic = message.topic.value
            payload = message.payload if isinstance(message.payload, bytes) else b""
            if topic.startswith(f"{PREFIX}/"):
                if topic.endswith("/config"):
                    configs[topic] = bool(payload)
                return
            if topic == f"{BASE}/bridge/info" and payload:
                infos.append((time.monotonic(), json.loads(payload)))
                shown = {k: infos[-1][1].get(k) for k in ("loop", "memory")}
                print(f"  bridge/info: {json.dumps(shown)}", file=sys.stderr, flush=True)
                return
            serial = topic.split("/")[1][1:]
            if topic.endswith("/charging_current"):
                amp = int(float(payload or b"0"))
            elif topic.endswith("/state") and payload:
                amp = json.loads(payload).get("charging_current")
            else:
                return
            with_value = server.sent_at.pop((serial, amp), None)
            if with_value is not None:
                latencies.append(1000 * (time.monotonic() - with_value))
                if args.profile and latencies[-1] > 250:
                    print(f"  slow change at {time.strftime('%H:%M:%S')}: {latencies[-1]:.0f} ms",
                          file=sys.stderr, flush=True)  # fmt: skip

        listener = asyncio.create_task(listen())
        bridge = bridge_process.start(
            bridge_process.tree_of(args.bridge_path),  # another tree's (main: the "before")
            ["run", "-c", str(workdir / "config.json"),
             "--log-level", "info" if args.profile else "warning"],
            workdir / "bridge.log",
        )  # fmt: skip
        try:
            result.connect_s, result.cpu_per_delta_us, result.rss_mib = await measure(
                bridge,
                server,
                n,
                args.window,
                args.settle,
                args.connect_deadline,
                received,
                infos,
                Path(f"{args.profile}-{n}.json") if args.profile else None,
            )
            seen0 = received[0]
            latencies.clear()
            server.sent_at.clear()
            harness_watch.report()  # from here: the latency window's
            await asyncio.sleep(latency_window(args.window))
            result.latencies_ms = list(latencies)
            result.harness = harness_watch.report()
            print(f"  bridge measured (the floor follows): {result.cpu_per_delta_us:.1f} us/delta,"
                  f" change p50 {percentile(result.latencies_ms, 0.5):.0f} ms,"
                  f" p99 {percentile(result.latencies_ms, 0.99):.0f} ms"
                  f" ({len(result.latencies_ms)}), RSS {result.rss_mib:.1f} MiB,"
                  f" connected in {result.connect_s:.0f} s, harness {result.harness}",
                  file=sys.stderr, flush=True)  # fmt: skip
            for profiler in PROFILERS:
                await asyncio.to_thread(profiler.wait)
            PROFILERS.clear()
            result.mqtt_per_s = (received[0] - seen0) / latency_window(args.window)
            if not args.json_only:
                for client in listening:  # mosquitto_sub counts them from here on
                    await client.unsubscribe(f"{PREFIX}/#")
                result.birth = await home_assistant_restarts(
                    broker, PREFIX, bridge.pid, server, sum(configs.values()), infos,
                    latencies, args.connect_deadline,
                )  # fmt: skip
        except RuntimeError as exc:
            result.note = str(exc)
        finally:
            if lost[0]:
                result.note += f" (the listener lost its connection {lost[0]} times)"
            bridge_process.stop(bridge)
            listener.cancel()
        for socket in list(server.open.values()):
            await socket.close()
        server.open.clear()
        if not args.no_floor:
            await measure_floor(result, server, chargers, workdir, args)
    ticker.cancel()
    harness_stop.set()
    for task in harness_tasks:
        task.cancel()
    await asyncio.gather(*harness_tasks, return_exceptions=True)
    assert server.runner is not None
    await server.runner.cleanup()
    return result


async def measure_floor(
    result: Result, server: PushServer, chargers: list[str], workdir: Path, args: Any
) -> None:
    """bench/bare_push.py on the same sockets: the floor's CPU per delta, into ``result``."""
    (workdir / "urls.json").write_text(json.dumps([f"ws://127.0.0.1:{server.port}/{s}/ws"
                                                   for s in chargers]))  # fmt: skip
    bare = subprocess.Popen([sys.executable, str(HERE / "bare_push.py"),
                             str(workdir / "urls.json"), TOKEN, PASSWORD])  # fmt: skip
    try:
        _, result.floor_per_delta_us, _ = await measure(
            bare, server, result.n, args.window, args.settle, args.connect_deadline
        )
    except RuntimeError as exc:
        result.note += f" floor: {exc}"
    finally:
        bare.terminate()
        bare.wait(30)


async def main_async(args: Any) -> None:
    results = []
    for n in args.sizes:
        print(f"running {n} charger(s) on websockets...", file=sys.stderr, flush=True)
        results.append(await run_size(n, args))
        print(f"  {results[-1]}", file=sys.stderr, flush=True)  # kept if a later size fails
    print_table(results)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--sizes", type=lambda s: [int(x) for x in s.split(",")], default=[1, 1000])
    parser.add_argument("--window", type=float, default=30.0, help="seconds measured")
    parser.add_argument(
        "--settle",
        type=float,
        default=5.0,
        help="seconds after every charger connected, before measuring",
    )
    parser.add_argument("--connect-deadline", type=float, default=600.0)
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument(
        "--json-only",
        action="store_true",
        help="discovery and leaf topics off: one JSON state per charger (the"
        " fleet back-end's shape; a 10 000-charger start-up otherwise spends"
        " minutes publishing 2.3 million discovery and state messages)",
    )
    parser.add_argument(
        "--bridge-path",
        help="run the bridge from this tree, e.g. a worktree of main for a before",
    )
    parser.add_argument(
        "--profile",
        metavar="PREFIX",
        help="py-spy (speedscope) of the bridge over the CPU window: PREFIX-N.json",
    )
    parser.add_argument(
        "--no-floor", action="store_true", help="skip the bare reader (a profiling run)"
    )
    parser.add_argument(
        "--harness-gc",
        choices=("upkeep", "python"),
        default="upkeep",
        help="the harness's own collector: the bridge's upkeep (default), or Python's"
        " (as before 2026-12-06: its full collections held the harness at 10 000)",
    )
    args = parser.parse_args(argv)
    random.seed(args.seed)
    asyncio.run(main_async(args))


if __name__ == "__main__":
    main()
