"""Chaos soak: 50 chargers, commands all the time, and everything dies now and then.

Not a test: it runs for --minutes (30 by default) and prints what it saw. The bridge
runs as its own process and is killed with SIGKILL every few minutes (then started
again); Mosquitto (persistence on) is restarted and frozen (SIGSTOP) now and then;
the simulated cloud injects the faults of bench/soak.py. A client with a persistent
session sends a command with a unique id every --command-every seconds to a random
charger and collects the results.

    sent         commands the broker acknowledged to us
    results      results received; every command must get one
    lost         sent, no result by the end (the goal: 0)
    twice        commands journaled, and so run, more than once (the goal: 0)
    repeated     results delivered twice (same id, same content; the goal: 0): results go
                 at QoS 2 through one client, so a connection, broker or bridge that dies
                 mid-publish is followed by the same packet again, which the broker
                 recognises. The commander subscribes at QoS 2 with one client too, so a
                 repeat it counts is the bridge's, not the broker's redelivery to it.

A lost command is looked up in the bridge's journal afterwards, so the report says
whether the bridge never got it or got it and failed to answer.

--hostile adds a second client that mixes what a hostile or careless user sends into
the stream: numbers no float holds, NaN, oversized payloads (100 KiB, refused with a
reason; 2 MiB, which the broker never hands the bridge), retained commands and clears
of them, and the generic set with a number for a switch. Each of its commands that
carries an id must get exactly one result; the bridge must never exit by itself.

--hostile-peers adds, beside the fleet, a charger on its own MQTT (hmq) whose topics a
spoofer publishes to in the other topic form and floods now and then (unknown keys x
60 KB, its nrg thousands of times), and a charger whose websocket is hostile (hws, the
tricks of bench/hostile_peers.py). Commands go to them too. The report adds the
command latency (p50, p99: from the broker's PUBACK to the result), what the bridge
dropped for each (bridge/info), and whether a spoofed value ever reached MQTT.

--disk-full puts state_dir on a small tmpfs (mounting needs root) and fills it now and
then for 20-60 s: commands are refused with the cause meanwhile, and the journal heals
by itself once space returns.

    python bench/chaos.py --minutes 30 --hostile --disk-full --hostile-peers
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import random
import signal
import sqlite3
import tempfile
import time
from collections import Counter
from pathlib import Path
from typing import Any

from chaos_breaks import (
    BASE,
    CLIENT_ID,
    HOSTILE_WS_SERIAL,
    OWN_MQTT_SERIAL,
    TOKEN,
    BridgeProcess,
    SmallDisk,
    chaos,
    write_config,
)
from chaos_clients import (
    bridge_online,
    commander,
    hostile,
    retained_json,
    watch_spoofed,
)
from hostile_peers import SPOOFED_AMP, HostileWebSocket, Spoofer

from goe2mqtt.sim.broker import MosquittoBroker
from goe2mqtt.sim.charger_mqtt import MqttCharger
from goe2mqtt.sim.simulator import SimulatedCharger, Simulator


def _pct(sorted_values: list[float], pct: float) -> float:
    return sorted_values[min(len(sorted_values) - 1, int(len(sorted_values) * pct / 100))]


def journaled_ids(path: Path) -> tuple[dict[str, str], Counter[str]]:
    """id -> state of every command the bridge journaled (finished ones are kept a day),
    and how often each id was journaled: a command runs only from its journal entry."""
    found: dict[str, str] = {}
    entries: Counter[str] = Counter()
    with contextlib.closing(sqlite3.connect(f"file:{path}?mode=ro", uri=True)) as db:
        for payload, state in db.execute("SELECT payload, state FROM commands"):
            with contextlib.suppress(ValueError, AttributeError):
                command_id = str(json.loads(payload).get("id"))
                found[command_id] = state
                entries[command_id] += 1
    return found, entries


async def run(args: Any) -> int:
    serials = [f"5{n:05d}" for n in range(args.chargers)]
    chargers = [SimulatedCharger(serial, TOKEN) for serial in serials]
    simulator = Simulator(chargers)
    await simulator.start()
    workdir = Path(tempfile.mkdtemp(prefix="goe2mqtt-chaos-"))
    disk = SmallDisk(workdir / "small-disk") if args.disk_full else None
    state_dir = workdir / "state" if disk is None else disk.mount / "state"
    hostile_sent: dict[str, float] = {}
    hostile_counts: Counter[str] = Counter()
    sent: dict[str, float] = {}
    results: Counter[str] = Counter()
    outcomes: Counter[str] = Counter()
    events: list[str] = []
    latency: dict[str, float] = {}
    target_of: dict[str, str] = {}  # command id -> the charger it went to
    targets = [f"c{serial}" for serial in serials]
    hostile_ws = HostileWebSocket(HOSTILE_WS_SERIAL, TOKEN) if args.hostile_peers else None
    own_mqtt = SimulatedCharger(OWN_MQTT_SERIAL, TOKEN)
    spoofed: Counter[str] = Counter()
    with MosquittoBroker(persistence=True) as broker:
        address = await hostile_ws.start() if hostile_ws is not None else None
        bridge = BridgeProcess(
            write_config(workdir, broker, simulator, serials, state_dir, address),
            workdir / "bridge.log",
        )
        bridge.start()
        # Commands count from the bridge's first connection: before it the broker has no
        # session for it and drops them (a fresh installation, not a loss of ours).
        await bridge_online(broker)
        started = time.monotonic()
        deadline = started + args.minutes * 60
        tasks = [asyncio.create_task(chaos(bridge, broker, chargers, deadline, events, disk))]
        spoofer = Spoofer(broker.host, broker.port, OWN_MQTT_SERIAL)
        if hostile_ws is not None:
            targets += ["hws", "hmq"]
            tasks += [
                asyncio.create_task(MqttCharger(own_mqtt, broker.host, broker.port).run()),
                asyncio.create_task(spoofer.run(deadline)),
                asyncio.create_task(watch_spoofed(broker, spoofed)),
            ]
        if args.hostile:
            tasks.append(asyncio.create_task(hostile(
                broker, chargers, args.hostile_every, deadline, hostile_sent, hostile_counts
            )))  # fmt: skip
        await commander(
            broker, targets, args, deadline, sent, results, outcomes, latency, target_of
        )
        info = await retained_json(broker, f"{BASE}/bridge/info")
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        if hostile_ws is not None:
            await hostile_ws.stop()
        if disk is not None:
            disk.free()
        bridge.check_alive()
        bridge.sample_rss()
        exit_code = bridge.stop()
    await simulator.stop()
    minutes = (time.monotonic() - started) / 60

    journal, entries = journaled_ids(state_dir / f"{CLIENT_ID}.journal")
    if disk is not None:
        disk.unmount()
    hostile_lost = [i for i in hostile_sent if results[i] == 0]
    hostile_repeated = [i for i in hostile_sent if results[i] > 1]
    lost = [i for i in sent if results[i] == 0]
    never_reached = [i for i in lost if i not in journal]
    twice = [i for i in sent if entries[i] > 1]  # journaled, so run, more than once
    repeated = [i for i in sent if results[i] > 1]  # a result delivered twice (same id)
    lines = (workdir / "bridge.log").read_bytes().splitlines()
    per_minute: Counter[str] = Counter()
    for line in lines:
        with contextlib.suppress(ValueError):
            per_minute[json.loads(line).get("timestamp", "")[:16]] += 1
    warm = [kib for age, kib in bridge.rss if age >= 60] or [0]
    print(f"chaos: {minutes:.1f} min, {args.chargers} chargers, {Counter(events).most_common()}")
    print(f"  bridge log            {workdir}/bridge.log")
    print(f"  commands sent         {len(sent)}")
    print(f"  results received      {sum(results[i] for i in sent)}")
    print(f"  lost (no result)      {len(lost)}  (of which never reached the bridge: "
          f"{len(never_reached)}; journal states of the rest: "
          f"{Counter(journal[i] for i in lost if i in journal)})")  # fmt: skip
    if lost:
        ages = sorted(round(deadline - sent[i], 1) for i in lost)
        print(f"  lost ids, sent N s before the end: {dict(zip(lost, ages, strict=True))}")
    print(f"  executed twice        {len(twice)}")
    print(f"  result repeated       {len(repeated)}  (same id and content; the goal: 0)")
    print(f"  outcomes              {dict(outcomes.most_common(12))}")
    groups = {"all": list(latency.values())}
    if hostile_ws is not None:
        for name, label in (("hmq", "own MQTT, flooded"), ("hws", "hostile websocket")):
            groups[label] = [v for i, v in latency.items() if target_of.get(i) == name]
        groups["the fleet"] = [v for i, v in latency.items() if target_of.get(i, "c")[0] == "c"]
    for label, values in groups.items():
        waits = sorted(values) or [0.0]
        print(f"  command latency       {label}: p50 {_pct(waits, 50):.2f} s, p99 "
              f"{_pct(waits, 99):.2f} s, max {waits[-1]:.2f} s ({len(values)} commands, "
              "PUBACK to result, kills and freezes included)")  # fmt: skip
    if hostile_ws is not None:
        chargers_info = (info or {}).get("chargers", {})
        print(f"  hostile websocket     tricks played {dict(hostile_ws.played)}")
        print(f"    bridge dropped      {chargers_info.get('hws', {}).get('skipped')}")
        print(f"  spoofer               {dict(spoofer.counts)}")
        print(f"    bridge dropped      {chargers_info.get('hmq', {}).get('skipped')}")
        print(f"    spoofed amp {SPOOFED_AMP} on MQTT  {spoofed['spoofed']} times "
              f"(of {spoofed['published']} publishes; the goal: 0)")  # fmt: skip
    print(f"  bridge kill -9        {bridge.kills}")
    print(f"  bridge RSS            first warm sample {warm[0] / 1024:.1f} MiB, "
          f"last {warm[-1] / 1024:.1f} MiB, max {max(warm) / 1024:.1f} MiB")  # fmt: skip
    print(f"  log lines per minute  mean {len(lines) / minutes:.0f}, "
          f"max {max(per_minute.values(), default=0)}")  # fmt: skip
    if args.hostile:
        print(f"  hostile messages      {dict(hostile_counts.most_common())}")
        print(f"  hostile with an id    {len(hostile_sent)}: no result {len(hostile_lost)}, "
              f"result twice {len(hostile_repeated)}")  # fmt: skip
    print(f"  bridge exits of its own  {bridge.own_exits}  (exit codes; the goal: none)")
    print(f"  exit code on SIGTERM  {exit_code}")
    ok = not lost and not twice and not repeated and not hostile_lost and not bridge.own_exits
    ok = ok and not spoofed["spoofed"]
    return 0 if ok and exit_code == 0 else 1


def main() -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--minutes", type=float, default=30.0)
    parser.add_argument("--chargers", type=int, default=50)
    parser.add_argument("--command-every", type=float, default=1.0, help="mean seconds")
    parser.add_argument(
        "--drain", type=float, default=120.0, help="seconds to wait for the last results"
    )
    parser.add_argument("--seed", type=int, default=None)
    parser.add_argument("--hostile", action="store_true", help="mix in a hostile client")
    parser.add_argument(
        "--hostile-every", type=float, default=2.0, help="mean seconds between hostile messages"
    )
    parser.add_argument(
        "--hostile-peers",
        action="store_true",
        help="a hostile websocket charger and a spoofing, flooding publisher beside the fleet",
    )
    parser.add_argument(
        "--disk-full", action="store_true", help="state_dir on a tmpfs that fills up (root)"
    )
    args = parser.parse_args()
    random.seed(args.seed)
    signal.signal(signal.SIGTERM, _interrupt)  # a CI timeout or kill unwinds like Ctrl-C
    return asyncio.run(run(args))


def _interrupt(signum: int, frame: object) -> None:
    raise KeyboardInterrupt


if __name__ == "__main__":
    raise SystemExit(main())
