"""kill -9 the bridge at seeded moments while commands wait in several chargers' queues.

    python bench/kill_queue.py [--seed 1] [--chargers 6] [--commands 120] [--kills 8]

The README's command table: a command that waits in the queue, then kill -9, "stays in
the journal, runs after the restart"; one whose set call may be out "is never sent
again" and ends `outcome unknown`; every command runs at most once and gets exactly one
result. Here the chargers are slow (each set answered after 0.2-1.5 s, seeded; one
charger answers its sets 503 part of the time), commands arrive all along at QoS 1 (while the
bridge is dead they wait in its broker session), and the bridge is killed (SIGKILL) at
seeded moments and started again at once. Each charger's commands set distinct currents,
so the charger's own record of set calls says which command reached it, and how often.

Checked at the end (after every command has a result): each command id has exactly one
result; a command answered ok reached its charger once, one refused (`not run`, stale,
queue full, offline) never, one `outcome unknown` at most once; no current set twice.
Exit code 0 when all held.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import random
import signal
import sys
import tempfile
from collections import Counter
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # tests/

from goe2mqtt.mqtt.topics import Topics
from goe2mqtt.sim.broker import MosquittoBroker
from goe2mqtt.sim.simulator import SimulatedCharger, Simulator
from tests.conftest import TOKEN, Daemon, MqttProbe, write_config

# Each charger's commands set these, one each; not 16, what the charger has at the start
# (a set refused 503 is confirmed by the read-back when the charger already has it).
AMPS = [amp for amp in range(6, 33) if amp != 16]


async def run(seed: int, chargers: int, commands: int, kills: int) -> int:
    rng = random.Random(seed)
    serials = {f"c{n}": f"{900100 + n}" for n in range(chargers)}
    sim = Simulator(SimulatedCharger(serial, TOKEN, ama=32) for serial in serials.values())
    await sim.start()
    for name, serial in serials.items():
        faults = sim.charger(serial).faults
        faults.delay, faults.only = rng.uniform(0.2, 1.5), "set"
        print(f"{name}: each set answered after {faults.delay:.2f} s")
    flaky = sim.charger(serials["c0"])
    folder = Path(tempfile.mkdtemp(prefix="kill-queue-"))
    failed: list[str] = []
    try:
        with MosquittoBroker() as broker:
            raw = {
                "mqtt": {"host": broker.host, "port": broker.port, "client_id": "kq",
                         "base_topic": "kq", "discovery_prefix": "kqha", "keepalive": 10},
                "http": {"enabled": False},
                "state_dir": str(folder / "state"),
                "chargers": [{"name": name, "serial": serial, "token": TOKEN,
                              "api_url": sim.url_for(serial), "scan_interval": 0.5,
                              "timeout": 3.0} for name, serial in serials.items()],
            }  # fmt: skip
            topics = Topics("kq")
            config = write_config(folder, raw)
            plan = [(rng.choice(list(serials)), rng.uniform(0, 1)) for _ in range(commands)]
            amps: dict[str, list[int]] = {name: list(AMPS) for name in serials}
            for name in amps:
                rng.shuffle(amps[name])
            sent: dict[str, tuple[str, int]] = {}  # id -> (charger, amp)
            kill_at = sorted(rng.sample(range(1, commands), min(kills, commands - 1)))
            watched = [f"{topics.base}/+/cmd/result", topics.availability("c0")]
            async with MqttProbe(broker.host, broker.port, watched) as probe:
                daemon = Daemon(config)
                await daemon.start()
                # Its session must exist first: a command published before the very first
                # start is dropped by the broker (the README says so).
                await probe.wait_text(topics.availability("c0"), "online", within=60)
                daemons = [daemon]
                for n, (name, pause) in enumerate(plan):
                    if not amps[name]:
                        continue
                    amp = amps[name].pop()
                    request_id = f"k{n}"
                    sent[request_id] = (name, amp)
                    payload = json.dumps({"charging_power": amp, "id": request_id})
                    await probe.publish(topics.command(name, "change_charging_power"), payload)
                    if n % 17 == 5:  # the flaky charger refuses sets for a while (503)
                        flaky.faults.http_status = None if flaky.faults.http_status else 503
                    await asyncio.sleep(pause * 0.2)  # pacing of the sender, not a wait
                    if n in kill_at:
                        await asyncio.sleep(rng.uniform(0, 2.5))  # a seeded moment
                        assert daemon.process is not None
                        daemon.process.send_signal(signal.SIGKILL)
                        await daemon.wait()
                        daemon = Daemon(config)
                        await daemon.start()
                        daemons.append(daemon)
                flaky.faults.http_status = None
                print(f"{len(sent)} commands sent, {len(daemons) - 1} kill -9s")

                def results() -> dict[str, list[dict[str, Any]]]:
                    out: dict[str, list[dict[str, Any]]] = {}
                    for m in probe.messages:
                        if not m.topic.endswith("/result"):
                            continue
                        body = m.json()
                        out.setdefault(str(body.get("id")), []).append(body)
                    return out

                loop = asyncio.get_running_loop()
                deadline = loop.time() + 180
                while loop.time() < deadline and not set(sent) <= set(results()):
                    await asyncio.sleep(0.5)
                await asyncio.sleep(3)  # a repeat, if any, has time to show
                assert await daemon.end(signal.SIGTERM) == 0
            answered = results()
            reached = {
                name: Counter(int(c["amp"]) for c in sim.charger(serial).set_calls if "amp" in c)
                for name, serial in serials.items()
            }
            kinds: Counter[str] = Counter()
            for request_id, (name, amp) in sent.items():
                got = answered.get(request_id, [])
                times = reached[name][amp]
                if len(got) != 1:
                    failed.append(f"{request_id} ({name} amp {amp}): {len(got)} results {got}")
                    continue
                result = got[0]
                error = str(result.get("error", ""))
                kind = "ok" if result["ok"] else error.split(":")[0][:30]
                kinds[kind] += 1
                if result["ok"] and times != 1:
                    failed.append(
                        f"{request_id} ({name} amp {amp}): ok but reached the charger"
                        f" {times} times: {result}"
                    )
                elif error.startswith("outcome unknown") and times > 1:
                    failed.append(f"{request_id}: outcome unknown, reached it {times} times")
                elif not result["ok"] and times and not error.startswith("outcome unknown"):
                    failed.append(f"{request_id}: refused ({error[:60]}) yet reached it")
            twice = {n: [a for a, k in c.items() if k > 1] for n, c in reached.items()}
            twice = {n: a for n, a in twice.items() if a}
            if twice:
                failed.append(f"currents set twice: {twice}")
            print(f"results by kind: {dict(kinds)}")
            cut = sum(e.get("event") == "command_interrupted" for d in daemons for e in d.events())
            print(f"interrupted at restarts: {cut}")
    finally:
        await sim.stop()
    for line in failed:
        print("BROKEN  " + line)
    print("all promises held" if not failed else f"{len(failed)} broken")
    return 1 if failed else 0


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--chargers", type=int, default=6)
    parser.add_argument("--commands", type=int, default=120)
    parser.add_argument("--kills", type=int, default=8)
    args = parser.parse_args()
    sys.exit(asyncio.run(run(args.seed, args.chargers, args.commands, args.kills)))


if __name__ == "__main__":
    main()
