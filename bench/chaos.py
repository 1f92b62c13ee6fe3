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
    repeated     results delivered twice (same id, same content): QoS 1 from the bridge
                 to the broker is at-least-once when a connection dies mid-publish

A lost command is looked up in the bridge's journal afterwards, so the report says
whether the bridge never got it or got it and failed to answer.

    python bench/chaos.py --minutes 30
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import random
import signal
import sqlite3
import subprocess
import sys
import tempfile
import time
import uuid
from collections import Counter
from pathlib import Path
from typing import Any

import aiomqtt
from paho.mqtt.packettypes import PacketTypes
from paho.mqtt.properties import Properties
from soak import FAULTS, rss_kib

from goe2mqtt.broker import MosquittoBroker
from goe2mqtt.simulator import Faults, SimulatedCharger, Simulator

TOKEN = "chaos-token-77a1"
BASE = "chaos"
CLIENT_ID = "goe2mqtt-chaos"


class BridgeProcess:
    """The bridge as its own process; killed and started again by the chaos."""

    def __init__(self, config: Path, log: Path) -> None:
        self.config, self.log = config, log
        self.process: subprocess.Popen[bytes] | None = None
        self.kills = 0
        self.rss: list[tuple[float, int]] = []  # (seconds since this process started, KiB)
        self.started = 0.0

    def start(self) -> None:
        with open(self.log, "ab") as out:
            self.process = subprocess.Popen(
                [sys.executable, "-m", "goe2mqtt", "--config", str(self.config),
                 "--log-format", "json"],
                stdout=out, stderr=subprocess.STDOUT,
            )  # fmt: skip
        self.started = time.monotonic()

    def kill(self) -> None:
        assert self.process is not None
        self.process.send_signal(signal.SIGKILL)
        self.process.wait()
        self.kills += 1

    def stop(self) -> int:
        assert self.process is not None
        self.process.terminate()
        return self.process.wait(30)

    def sample_rss(self) -> None:
        if self.process is not None and self.process.poll() is None:
            with contextlib.suppress(OSError):
                self.rss.append((time.monotonic() - self.started, rss_kib(self.process.pid)))


def write_config(workdir: Path, broker: MosquittoBroker, simulator: Simulator,
                 serials: list[str]) -> Path:  # fmt: skip
    config = workdir / "config.yaml"
    config.write_text(
        json.dumps(  # JSON is YAML
            {
                "mqtt": {"host": broker.host, "port": broker.port, "client_id": CLIENT_ID,
                         "base_topic": BASE, "discovery_prefix": "chaos-ha", "keepalive": 10},
                "state_dir": str(workdir / "state"),
                "chargers": [
                    {"name": f"c{serial}", "serial": serial, "token": TOKEN,
                     "api_url": simulator.url_for(serial), "scan_interval": 5,
                     "idle_scan_interval": 15, "timeout": 2}
                    for serial in serials
                ],
            }
        )
    )  # fmt: skip
    return config


async def chaos(
    bridge: BridgeProcess, broker: MosquittoBroker, chargers: list[SimulatedCharger],
    deadline: float, events: list[str],
) -> None:  # fmt: skip
    loop = asyncio.get_running_loop()
    next_kill = loop.time() + random.uniform(120, 300)
    next_broker = loop.time() + random.uniform(150, 330)
    while loop.time() < deadline:
        await asyncio.sleep(random.uniform(5, 15))
        bridge.sample_rss()
        now = loop.time()
        if now >= next_kill:
            events.append("bridge kill -9")
            bridge.kill()
            await asyncio.sleep(random.uniform(1, 4))
            bridge.start()
            next_kill = now + random.uniform(180, 360)
        elif now >= next_broker:
            if random.random() < 0.5:
                events.append("broker restart")
                await asyncio.to_thread(broker.restart)
            else:
                events.append("broker frozen 20 s")
                broker.pause()
                await asyncio.sleep(20)
                broker.resume()
            next_broker = now + random.uniform(180, 360)
        else:
            charger = random.choice(chargers)
            label, faults, lasts = random.choice(FAULTS)
            events.append(label)
            charger.faults = Faults(
                **{**faults.__dict__, "values": dict(faults.values),
                   "missing": list(faults.missing)}
            )  # fmt: skip
            if lasts:
                loop.call_later(lasts, setattr, charger, "faults", Faults())
            plugged = random.choice(chargers)
            plugged.unplug() if plugged.plugged else plugged.plug_in()


async def commander(
    broker: MosquittoBroker, chargers: list[SimulatedCharger], args: Any, deadline: float,
    sent: dict[str, float], results: Counter[str], outcomes: Counter[str],
) -> None:  # fmt: skip
    props = Properties(PacketTypes.CONNECT)  # type: ignore[no-untyped-call]
    props.SessionExpiryInterval = 3600
    drain_until = deadline + args.drain

    async def send_loop(client: aiomqtt.Client) -> None:
        while time.monotonic() < deadline:
            await asyncio.sleep(random.expovariate(1 / args.command_every))
            charger = random.choice(chargers)
            service, payload = random.choice(
                [("change_charging_power", {"charging_power": random.randint(6, 16)}),
                 ("set_phase", {"phase": random.randint(0, 2)}),
                 ("stop_charging", {}), ("start_charging", {}), ("wallbox_control", {})]
            )  # fmt: skip
            command_id = uuid.uuid4().hex[:12]
            body = json.dumps({**payload, "id": command_id})
            try:
                await client.publish(f"{BASE}/c{charger.serial}/cmd/{service}", body, qos=1)
            except aiomqtt.MqttError:
                continue  # not acknowledged (broker frozen or gone): not counted as sent
            sent[command_id] = time.monotonic()  # the broker has it

    while time.monotonic() < drain_until:
        try:
            async with aiomqtt.Client(
                broker.host, broker.port, identifier="chaos-commander",
                protocol=aiomqtt.ProtocolVersion.V5, clean_start=False, properties=props,
            ) as client:  # fmt: skip
                await client.subscribe(f"{BASE}/+/cmd/result", qos=1)
                sender = asyncio.create_task(send_loop(client))
                try:
                    async with asyncio.timeout(max(0.1, drain_until - time.monotonic())):
                        async for message in client.messages:
                            assert isinstance(message.payload, bytes)
                            result = json.loads(message.payload)
                            results[str(result.get("id"))] += 1
                            outcome = "ok" if result["ok"] else str(result["error"])
                            outcomes[outcome.split(":")[0][:40]] += 1
                finally:
                    sender.cancel()
                    await asyncio.gather(sender, return_exceptions=True)
        except aiomqtt.MqttError:
            await asyncio.sleep(1)
        except TimeoutError:
            return


async def bridge_online(broker: MosquittoBroker) -> None:
    async with aiomqtt.Client(broker.host, broker.port) as client:
        await client.subscribe(f"{BASE}/bridge/availability")
        async for message in client.messages:
            if message.payload == b"online":
                return


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
    sent: dict[str, float] = {}
    results: Counter[str] = Counter()
    outcomes: Counter[str] = Counter()
    events: list[str] = []
    with MosquittoBroker(persistence=True) as broker:
        bridge = BridgeProcess(write_config(workdir, broker, simulator, serials),
                               workdir / "bridge.log")  # fmt: skip
        bridge.start()
        # Commands count from the bridge's first connection: before it the broker has no
        # session for it and drops them (a fresh installation, not a loss of ours).
        await bridge_online(broker)
        started = time.monotonic()
        deadline = started + args.minutes * 60
        chaos_task = asyncio.create_task(chaos(bridge, broker, chargers, deadline, events))
        await commander(broker, chargers, args, deadline, sent, results, outcomes)
        chaos_task.cancel()
        await asyncio.gather(chaos_task, return_exceptions=True)
        bridge.sample_rss()
        exit_code = bridge.stop()
    await simulator.stop()
    minutes = (time.monotonic() - started) / 60

    journal, entries = journaled_ids(workdir / "state" / f"{CLIENT_ID}.journal")
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
    print(f"  result repeated       {len(repeated)}  (same id and content, sent again after a"
          " connection died before the broker's PUBACK)")  # fmt: skip
    print(f"  outcomes              {dict(outcomes.most_common(12))}")
    print(f"  bridge kill -9        {bridge.kills}")
    print(f"  bridge RSS            first warm sample {warm[0] / 1024:.1f} MiB, "
          f"last {warm[-1] / 1024:.1f} MiB, max {max(warm) / 1024:.1f} MiB")  # fmt: skip
    print(f"  log lines per minute  mean {len(lines) / minutes:.0f}, "
          f"max {max(per_minute.values(), default=0)}")  # fmt: skip
    print(f"  exit code on SIGTERM  {exit_code}")
    return 0 if not lost and not twice and exit_code == 0 else 1


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
    args = parser.parse_args()
    random.seed(args.seed)
    signal.signal(signal.SIGTERM, _interrupt)  # a CI timeout or kill unwinds like Ctrl-C
    return asyncio.run(run(args))


def _interrupt(signum: int, frame: object) -> None:
    raise KeyboardInterrupt


if __name__ == "__main__":
    raise SystemExit(main())
