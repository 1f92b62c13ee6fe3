"""Soak: goe2mqtt as a daemon for a long while, commands and faults all the time.

Not a test: it runs for --minutes (30 by default) and prints what it saw. The
bridge runs as its own process (`python -m goe2mqtt`) so its memory is its own;
Mosquitto (with persistence, restarted now and then) and the simulated cloud run
here, and this script is the MQTT client that sends commands and the hand that
injects faults.

Every command carries an id; a command is
  confirmed  when its result says ok and the simulated charger received the value,
  failed     when its result says why not (an injected fault, the charger offline),
  lost       when no result came within --result-timeout seconds.
Lost must be 0. A command whose result says ok while the charger neither received
it nor already held the value is counted as "ok but not applied" and must be 0 too.

    python bench/soak.py --minutes 30
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import os
import random
import signal
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

from goe2mqtt.sim.broker import MosquittoBroker
from goe2mqtt.sim.simulator import Faults, SimulatedCharger, Simulator

SERIAL = "424242"
TOKEN = "soak-token-1c8e"
NAME = "soak"
BASE = "soak"

# (label, faults, seconds it lasts). Each is a thing the go-e cloud really does.
FAULTS: list[tuple[str, Faults, float]] = [
    ("server error x2", Faults(http_status=500, times=2), 0),
    ("slow answers", Faults(delay=3.0, times=2), 0),  # the bridge's timeout is 2 s
    ("not JSON", Faults(garbage=True, times=3), 0),
    ("truncated JSON", Faults(body='{"car": 2, "amp": 1', times=3), 0),
    ("wrong types", Faults(values={"amp": "sixteen", "nrg": None, "car": []}), 10),
    ("missing keys", Faults(missing=["amp", "psm", "nrg"]), 10),
    ("charger offline (404)", Faults(http_status=404), 10),
    ("set lost after 202", Faults(drop_sets=True, times=None), 8),
    ("set refused (422)", Faults(reject_sets=True), 8),
]


@dataclass
class Tally:
    sent: int = 0
    confirmed: int = 0
    failed: int = 0
    lost: int = 0
    wrong: int = 0
    latencies: list[float] = field(default_factory=list)
    reasons: dict[str, int] = field(default_factory=dict)


def rss_kib(pid: int) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1])
    return 0


def cpu_seconds(pid: int) -> float:
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def start_bridge(
    broker: MosquittoBroker, simulator: Simulator, workdir: Path
) -> subprocess.Popen[bytes]:
    config = workdir / "config.yaml"
    config.write_text(
        json.dumps(  # JSON is YAML
            {
                "mqtt": {
                    "host": broker.host,
                    "port": broker.port,
                    "client_id": "goe2mqtt-soak",
                    "base_topic": BASE,
                    "discovery_prefix": "soak-ha",
                },
                "chargers": [
                    {
                        "name": NAME,
                        "serial": SERIAL,
                        "token": TOKEN,
                        "api_url": simulator.url_for(SERIAL),
                        "scan_interval": 2,
                        "timeout": 2,
                    }
                ],
            }
        )
    )
    log = open(workdir / "bridge.log", "ab")
    return subprocess.Popen(
        [sys.executable, "-m", "goe2mqtt", "--config", str(config), "--log-format", "json"],
        stdout=log,
        stderr=subprocess.STDOUT,
    )


def next_command(charger: SimulatedCharger) -> tuple[str, dict[str, Any], tuple[str, Any]]:
    """(service, payload, (API key, value the charger must receive))."""
    choice = random.random()
    if choice < 0.5:
        amp = random.randint(charger.mca, 16)
        return "change_charging_power", {"charging_power": amp}, ("amp", amp)
    if choice < 0.75:
        phase = random.choice([0, 1, 2])
        return "set_phase", {"phase": phase}, ("psm", phase)
    if charger.frc == 2:
        return "stop_charging", {}, ("frc", 1)
    return "start_charging", {}, ("frc", 2)


async def inject_faults(
    charger: SimulatedCharger, broker: MosquittoBroker, args: Any, log: list[str]
) -> None:
    next_restart = time.monotonic() + args.broker_restart_every
    while True:
        await asyncio.sleep(random.uniform(10, 30))
        if time.monotonic() >= next_restart:
            log.append(f"{time.strftime('%H:%M:%S')} broker restart")
            await asyncio.to_thread(broker.restart)
            next_restart = time.monotonic() + args.broker_restart_every
            continue
        label, faults, lasts = random.choice(FAULTS)
        log.append(f"{time.strftime('%H:%M:%S')} {label}")
        charger.faults = Faults(
            **{**faults.__dict__, "values": dict(faults.values), "missing": list(faults.missing)}
        )
        if lasts:
            await asyncio.sleep(lasts)
            charger.faults = Faults()
        if random.random() < 0.3:  # the car comes and goes too
            charger.unplug() if charger.plugged else charger.plug_in()


async def send_commands(
    broker: MosquittoBroker, charger: SimulatedCharger, args: Any, tally: Tally, deadline: float
) -> None:
    # id -> (sent at, index into the charger's set calls then, (key, value) expected,
    #        whether the charger already held that value when it was sent)
    pending: dict[str, tuple[float, int, tuple[str, Any], bool]] = {}

    async def settle(result: dict[str, Any]) -> None:
        sent_at, first_call, (key, value), held = pending.pop(str(result["id"]))
        tally.latencies.append(time.monotonic() - sent_at)
        if result["ok"]:
            tally.confirmed += 1
            # Other commands and the car may have changed it since: look for the set itself.
            # (A set the cloud lost is still a truthful "ok" if the value was there already.)
            received = any(call.get(key) == value for call in charger.set_calls[first_call:])
            if not received and not held:
                tally.wrong += 1
        else:
            tally.failed += 1
            reason = str(result.get("error", "?")).split(":")[0][:40]
            tally.reasons[reason] = tally.reasons.get(reason, 0) + 1

    async def client_session() -> None:
        # A persistent session of our own, so results published while the broker
        # restarts still reach us; reconnects are this loop's business.
        while time.monotonic() < deadline + args.result_timeout:
            try:
                async with aiomqtt.Client(
                    broker.host, broker.port, identifier="soak-client",
                    protocol=aiomqtt.ProtocolVersion.V5, clean_start=False, properties=props,
                ) as client:  # fmt: skip
                    await client.subscribe(f"{BASE}/{NAME}/cmd/result", qos=1)
                    sender = asyncio.create_task(send_loop(client))
                    try:
                        async for message in client.messages:
                            assert isinstance(message.payload, bytes)
                            result = json.loads(message.payload)
                            if str(result.get("id")) in pending:
                                await settle(result)
                    finally:
                        sender.cancel()
            except aiomqtt.MqttError:
                await asyncio.sleep(1)

    async def send_loop(client: aiomqtt.Client) -> None:
        while time.monotonic() < deadline:
            await asyncio.sleep(random.uniform(0.5, 2 * args.command_every - 0.5))
            if not charger.plugged and random.random() < 0.5:
                charger.plug_in()
            service, payload, expect = next_command(charger)
            command_id = uuid.uuid4().hex[:12]
            body = json.dumps({**payload, "id": command_id, "ts": time.time()})
            key, value = expect
            held = getattr(charger, key) == value
            pending[command_id] = (time.monotonic(), len(charger.set_calls), expect, held)
            try:
                await client.publish(f"{BASE}/{NAME}/cmd/{service}", body, qos=1)
            except aiomqtt.MqttError:
                pending.pop(command_id)  # never left us: not sent
                raise
            tally.sent += 1

    from paho.mqtt.packettypes import PacketTypes
    from paho.mqtt.properties import Properties

    props = Properties(PacketTypes.CONNECT)
    props.SessionExpiryInterval = 600
    session = asyncio.create_task(client_session())
    await asyncio.sleep(max(0.0, deadline - time.monotonic()))
    # Give the last commands their time, then count what never got an answer.
    limit = time.monotonic() + args.result_timeout
    while pending and time.monotonic() < limit:
        await asyncio.sleep(0.5)
    now = time.monotonic()
    tally.lost = sum(1 for entry in pending.values() if now - entry[0] >= args.result_timeout)
    session.cancel()
    with contextlib.suppress(asyncio.CancelledError):
        await session


async def soak(args: Any) -> int:
    charger = SimulatedCharger(SERIAL, TOKEN)
    simulator = Simulator([charger])
    await simulator.start()
    workdir = Path(tempfile.mkdtemp(prefix="goe2mqtt-soak-"))
    fault_log: list[str] = []
    tally = Tally()
    with MosquittoBroker(persistence=True) as broker:
        bridge = start_bridge(broker, simulator, workdir)
        try:
            await asyncio.sleep(10)  # start-up, first polls
            rss_start, cpu_start = rss_kib(bridge.pid), cpu_seconds(bridge.pid)
            started = time.monotonic()
            deadline = started + args.minutes * 60
            injector = asyncio.create_task(inject_faults(charger, broker, args, fault_log))
            await send_commands(broker, charger, args, tally, deadline)
            injector.cancel()
            rss_end, cpu_end = rss_kib(bridge.pid), cpu_seconds(bridge.pid)
            elapsed = time.monotonic() - started
            alive = bridge.poll() is None
        finally:
            bridge.terminate()
            exit_code = bridge.wait(15)
    await simulator.stop()

    latencies = sorted(tally.latencies) or [0.0]
    p99 = latencies[min(len(latencies) - 1, int(len(latencies) * 0.99))]
    print(f"soak: {elapsed / 60:.1f} min, {len(fault_log)} faults injected")
    print(f"  bridge log          {workdir}/bridge.log")
    print(f"  commands sent       {tally.sent}")
    print(f"  confirmed           {tally.confirmed}")
    print(f"  failed, with reason {tally.failed}  {dict(sorted(tally.reasons.items()))}")
    print(f"  lost (no result)    {tally.lost}")
    print(f"  ok but not applied  {tally.wrong}")
    print(f"  result latency      p50 {statistics.median(latencies):.2f} s, p99 {p99:.2f} s")
    print(f"  bridge RSS          start {rss_start / 1024:.1f} MiB, end {rss_end / 1024:.1f} MiB")
    print(f"  bridge CPU          {cpu_end - cpu_start:.1f} s over the run")
    print(f"  bridge alive        {alive}; exit code on SIGTERM {exit_code}")
    faults_seen: dict[str, int] = {}
    for line in fault_log:
        label = line.split(" ", 1)[1]
        faults_seen[label] = faults_seen.get(label, 0) + 1
    print(f"  faults              {dict(sorted(faults_seen.items()))}")
    return 0 if tally.lost == 0 and tally.wrong == 0 and alive and exit_code == 0 else 1


def main() -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--minutes", type=float, default=30.0)
    parser.add_argument(
        "--command-every", type=float, default=3.0, help="mean seconds between commands"
    )
    parser.add_argument("--broker-restart-every", type=float, default=300.0, help="seconds")
    parser.add_argument(
        "--result-timeout", type=float, default=30.0, help="seconds before a command counts as lost"
    )
    parser.add_argument("--seed", type=int, default=None)
    args = parser.parse_args()
    random.seed(args.seed)
    # SIGTERM (kill, a CI timeout) unwinds like Ctrl-C, so the bridge and Mosquitto die too.
    signal.signal(signal.SIGTERM, _interrupt)
    return asyncio.run(soak(args))


def _interrupt(signum: int, frame: object) -> None:
    raise KeyboardInterrupt


if __name__ == "__main__":
    raise SystemExit(main())
