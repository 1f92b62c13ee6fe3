"""A full disk under a running bridge, on a real tmpfs (root): what the README promises.

    sudo python bench/full_disk.py [--size 256k] [--commands 8] [--kill]

state_dir is a tmpfs of its own. The garage charger answers each set after 1.5 s (a slow
charger), so commands wait in its queue, journaled; then the disk is filled to its last
block. What is checked, and printed as one line each:

- the command at the charger when the disk filled is answered; the queued ones wait for
  the disk (`command_waits_for_journal`), none answered `not run`; /readyz says 503 with
  the journal's reason; `journal_write_failed` is logged once;
- the disk is freed: the journal heals by itself (bridge/info `journal.ok`, /readyz 200,
  `journal_recovered`) with no command sent, and the waiting commands run, each answered
  once; the books too (a session ended while full: `ledger_write_failed` once,
  `ledger_recovered`);
- the bridge is restarted (SIGTERM; or SIGKILL with --kill while still full, the disk
  freed before the new start: the waiting commands run then, once each): nothing
  answered before is answered again (--kill: but the command at the charger when the
  disk filled, `outcome unknown`, the README's exception), no command is ever answered
  `not run`, no set reaches the charger twice;
- full again with no command queued, one command refused, freed: /readyz 200 by itself;
- a start on a full disk (the journal and the books there already): exit 2, one line.

Exit code 0 when every promise held, 1 otherwise (the lines say which).
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import os
import signal
import sqlite3
import subprocess
import sys
import tempfile
from pathlib import Path
from typing import Any

import aiohttp

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # tests/

from goe2mqtt.mqtt.topics import Topics
from goe2mqtt.sim.broker import MosquittoBroker, free_port
from goe2mqtt.sim.simulator import SimulatedCharger, Simulator
from tests.conftest import SERIALS, TOKEN, Daemon, MqttProbe, fill, make_settings, write_config

SLOW_SET = 1.5  # s the garage takes to answer a set


async def readyz(port: int) -> tuple[int, Any]:
    async with (
        aiohttp.ClientSession() as http,
        http.get(f"http://127.0.0.1:{port}/readyz") as response,
    ):
        return response.status, await response.json()


async def until(predicate: Any, within: float = 30.0) -> bool:
    """Wait (bounded) for a condition; whether it came."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + within
    while loop.time() < deadline:
        if await predicate():
            return True
        await asyncio.sleep(0.1)
    return False


def events(*daemons: Daemon) -> list[str]:
    return [str(e.get("event")) for d in daemons for e in d.events()]


async def run(folder: Path, disk: Path, commands: int, kill: bool) -> int:
    failed: list[str] = []

    def check(ok: bool, what: str) -> None:
        print(("ok    " if ok else "BROKEN") + "  " + what, flush=True)
        if not ok:
            failed.append(what)

    sim = Simulator(SimulatedCharger(serial, TOKEN) for serial in SERIALS.values())
    await sim.start()
    garage = sim.charger(SERIALS["garage"])
    try:
        with MosquittoBroker() as broker:
            raw = make_settings(broker, sim, scan_interval=1.0, timeout=SLOW_SET + 3)
            raw["state_dir"] = str(disk / "state")
            raw["mqtt"]["keepalive"] = 8  # the bridge info (and the journal's retry) every 2 s
            port = free_port()
            raw["http"] = {"listen": f"127.0.0.1:{port}"}
            topics = Topics(raw["mqtt"]["base_topic"])
            first = Daemon(write_config(folder, raw))
            await first.start()
            async with MqttProbe(broker.host, broker.port, [f"{topics.base}/#"]) as probe:
                await probe.wait_text(topics.availability("garage"), "online", within=60)
                garage.plug_in()  # a session in the books: the ledger writes too
                await probe.wait_for(topics.session("garage"), within=60)
                garage.faults.delay, garage.faults.only = SLOW_SET, "set"
                ids = [f"c{n}" for n in range(commands)]
                for n, request_id in enumerate(ids):  # amps 6.. : each set tells its command
                    payload = json.dumps({"charging_power": 6 + n, "id": request_id})
                    await probe.publish(topics.command("garage", "change_charging_power"), payload)
                await until(lambda: _true(garage.set_requests >= 1))
                # Every command journaled (queued behind the first) before the disk fills:
                # one that came after is refused unstored (`not run`), never journaled.
                await until(lambda: _true(_journaled(disk) == commands))
                filler = fill(disk)
                print(f"disk filled while {commands} commands waited behind a slow charger")

                def answered() -> dict[str, list[dict[str, Any]]]:
                    out: dict[str, list[dict[str, Any]]] = {}
                    for m in probe.messages:
                        if m.topic == topics.result("garage"):
                            out.setdefault(m.json().get("id"), []).append(m.json())
                    return out

                def not_run() -> list[str]:
                    return [i for i, results in answered().items() for r in results
                            if str(r.get("error", "")).startswith("not run")]  # fmt: skip

                got = await until(lambda: _true(ids[0] in answered()
                                                and "command_waits_for_journal" in events(first)),
                                  60)  # fmt: skip
                check(got, f"the command at the charger answered while full ({ids[0]}: "
                      f"{answered().get(ids[0], [{}])[0].get('error', 'ok')[:40]}), the"
                      " next waits for the disk")  # fmt: skip
                garage.unplug()  # the session ends while the disk is full
                failing = await until(lambda: _true("ledger_write_failed" in events(first)))
                check(failing, "the ended session's write refused: ledger_write_failed")
                status, body = await readyz(port)
                check(status == 503 and any("journal" in r for r in body["reasons"]),
                      f"/readyz while full: {status} {body['reasons']}")  # fmt: skip
                check(events(first).count("journal_write_failed") == 1,
                      "journal_write_failed logged once")  # fmt: skip
                waiting = [i for i in ids if i not in answered()]
                check(not_run() == [] and len(waiting) == commands - 1,
                      f"{len(waiting)} of {commands} wait for the disk, unanswered; answered"
                      f" 'not run': {not_run()}")  # fmt: skip
                if kill:
                    first.process.send_signal(signal.SIGKILL)  # type: ignore[union-attr]
                    await first.wait()
                    filler.unlink()
                    print("bridge killed (SIGKILL) while full, then the disk freed")
                else:
                    filler.unlink()
                    print("  freed: " + _df(disk))
                    healed = await until(lambda: _ready(port), 30)
                    check(healed, "journal healed by itself once freed, no command sent:"
                                  f" /readyz {await readyz(port)}")  # fmt: skip
                    check("journal_recovered" in events(first), "journal_recovered logged")
                    ran = await until(lambda: _true(all(i in answered() for i in ids)), 60)
                    once = all(len(answered().get(i, [])) == 1 for i in ids)
                    ok = all(answered().get(i, [{}])[0].get("ok") for i in waiting)
                    check(ran and once and ok, f"the {len(waiting)} waiting commands ran once"
                          " the disk healed, each answered once, ok")  # fmt: skip
                    books = await until(lambda: _true("ledger_recovered" in events(first)))
                    check(books and events(first).count("ledger_write_failed") == 1,
                          "ledger_write_failed once, then ledger_recovered")  # fmt: skip
                    assert await first.end(signal.SIGTERM) == 0
                    print("bridge stopped (SIGTERM) after the disk healed")
                sets_before = [dict(c) for c in garage.set_calls]
                mark = probe.mark()
                second = Daemon(first.config)
                await second.start()
                await probe.wait_text(topics.availability("garage"), "online", since=mark,
                                      within=60)  # fmt: skip
                barrier = json.dumps({"phase": "auto", "id": "barrier"})
                await probe.publish(topics.command("garage", "set_phase"), barrier)
                await probe.wait_for(topics.result("garage"),
                                     lambda m: m.json().get("id") == "barrier", since=mark,
                                     within=60)  # fmt: skip
                again = [m.json() for m in probe.since(mark, topics.result("garage"))
                         if m.json().get("id") != "barrier"]  # fmt: skip
                ran_after = [int(c["amp"]) for c in garage.set_calls[len(sets_before) :]
                             if "amp" in c]  # fmt: skip
                amps = [int(c["amp"]) for c in garage.set_calls if "amp" in c]
                if kill:
                    # Waiting when killed: each runs now, once. The one at the charger
                    # when the disk filled had its result out, its row not: answered
                    # again `outcome unknown` (the README's exception).
                    repeated = [(r.get("id"), r.get("error", "ok")[:40]) for r in again
                                if r.get("id") not in waiting]  # fmt: skip
                    print(f"  answered again after the restart: {repeated}")
                    check(
                        all(i == ids[0] and e.startswith("outcome unknown") for i, e in repeated),
                        "only the command at the charger answered again (outcome unknown)",
                    )
                    want = sorted(6 + ids.index(i) for i in waiting)
                    got_ok = [r.get("id") for r in again if r.get("id") in waiting and r["ok"]]
                    check(sorted(ran_after) == want and sorted(got_ok) == sorted(waiting),
                          f"the {len(waiting)} waiting commands ran after the restart, once"
                          f" each, ok: sets {ran_after}")  # fmt: skip
                else:
                    said = [(r.get("id"), r.get("error", "ok")[:40]) for r in again]
                    check(
                        again == [], f"no earlier command answered again after the restart: {said}"
                    )
                    check(ran_after == [], f"nothing ran again after the restart: {ran_after}")
                check(not_run() == [], f"no command ever answered 'not run': {not_run()}")
                check(len(amps) == len(set(amps)), f"no set reached the charger twice: {amps}")
                # Full again with nothing queued: the one command is refused before it
                # is stored, so nothing is owed; freed, the journal must heal by itself.
                filler = fill(disk)
                mark = probe.mark()
                lone = json.dumps({"phase": "auto", "id": "lone"})
                await probe.publish(topics.command("garage", "set_phase"), lone)
                refusal = await probe.wait_for(topics.result("garage"),
                                               lambda m: m.json().get("id") == "lone",
                                               since=mark, within=60)  # fmt: skip
                print(f"full again, nothing queued: {refusal.json().get('error', 'ok')[:50]}")
                filler.unlink()
                healed = await until(lambda: _ready(port), 30)
                check(healed, "freed with nothing owed, no command sent: /readyz"
                              f" {await readyz(port)}")  # fmt: skip
                assert await second.end(signal.SIGTERM) == 0
                # A start on a full disk, with the journal and the books already there.
                filler = fill(disk)
                third = Daemon(first.config)
                await third.start()
                code = await third.wait(within=60)
                said = [line for line in third.stderr.decode().splitlines() if "cannot" in line]
                check(code == 2 and bool(said) and "Traceback" not in third.stderr.decode(),
                      f"a start on a full disk: exit {code}, {said[:1]}")  # fmt: skip
                filler.unlink()
                for name, daemon in (("first", first), ("second", second)):
                    (folder / f"{name}.log").write_bytes(daemon.stderr)
                print(f"logs: {folder}/first.log, second.log")
    finally:
        await sim.stop()
    print("all promises held" if not failed else f"{len(failed)} promise(s) broken")
    return 1 if failed else 0


def _journaled(disk: Path) -> int:
    """The commands in the bridge's journal (read beside it, as another process may)."""
    (path,) = (disk / "state").glob("*.journal")
    with contextlib.closing(sqlite3.connect(f"file:{path}?mode=ro", uri=True)) as db:
        query = "SELECT COUNT(*) FROM commands WHERE service = 'change_charging_power'"
        return int(db.execute(query).fetchone()[0])


def _df(disk: Path) -> str:
    """What the disk holds: its files and their sizes, and the free space."""
    stat = os.statvfs(disk)
    files = {p.name: p.stat().st_size for p in sorted(disk.rglob("*")) if p.is_file()}
    return f"{stat.f_bavail * stat.f_frsize} bytes free; {files}"


async def _true(value: bool) -> bool:
    return value


async def _ready(port: int) -> bool:
    return (await readyz(port))[0] == 200


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--size", default="1m", help="the tmpfs's size")
    parser.add_argument("--commands", type=int, default=8, help="commands queued")
    parser.add_argument("--kill", action="store_true", help="SIGKILL while full, not SIGTERM")
    args = parser.parse_args()
    folder = Path(tempfile.mkdtemp(prefix="full-disk-"))
    disk = folder / "disk"
    disk.mkdir()
    mount = ["mount", "-t", "tmpfs", "-o", f"size={args.size}", "tmpfs", str(disk)]
    subprocess.run(mount, check=True)
    try:
        code = asyncio.run(run(folder, disk, args.commands, args.kill))
    finally:
        subprocess.run(["umount", "-l", str(disk)], check=False)
    sys.exit(code)


if __name__ == "__main__":
    main()
