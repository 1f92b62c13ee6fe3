"""Nothing a client, a charger or a full disk sends stops the bridge.

Each case drives goe2mqtt as its own process through a real Mosquitto and the
simulated charger, the way a hostile or careless user would reach it.
"""

from __future__ import annotations

import contextlib
import json
import os
import signal
import sqlite3
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest

from goe2mqtt.mqtt.topics import Topics
from goe2mqtt.sim.broker import MosquittoBroker
from goe2mqtt.sim.simulator import Simulator

from ..conftest import (
    Daemon,
    MqttProbe,
    fill,
    make_settings,
    mounted_small_disk,
    until,
    write_config,
)

HUGE = "1" + "0" * 400  # an integer JSON reads, and no float holds


@contextlib.asynccontextmanager
async def running_daemon(
    broker: MosquittoBroker, simulator: Simulator, folder: Path, **charger: Any
) -> AsyncIterator[tuple[Daemon, MqttProbe, Topics]]:
    """The daemon serving the garage charger, online, and a probe on its topics."""
    raw = make_settings(broker, simulator, scan_interval=charger.pop("scan_interval", 0.3))
    raw["state_dir"] = str(charger.pop("state_dir", folder / "state"))
    raw["chargers"][0].update(charger)
    topics = Topics(raw["mqtt"]["base_topic"])
    daemon = Daemon(write_config(folder, raw))
    await daemon.start()
    try:
        async with MqttProbe(broker.host, broker.port, [f"{topics.base}/#"]) as probe:
            await probe.wait_text(topics.availability("garage"), "online")
            yield daemon, probe, topics
    finally:
        if daemon.running:
            await daemon.end(signal.SIGTERM)


def results(probe: MqttProbe, topics: Topics, since: int = 0) -> list[dict[str, Any]]:
    return [m.json() for m in probe.since(since, topics.result("garage"))]


async def barrier(probe: MqttProbe, topics: Topics, name: str) -> dict[str, Any]:
    """A harmless command whose result says every earlier message was handled: results
    leave in the order the commands were taken."""
    mark = probe.mark()
    await probe.publish(
        topics.command("garage", "set_phase"), json.dumps({"phase": "auto", "id": name})
    )
    found = await probe.wait_for(
        topics.result("garage"), lambda m: m.json().get("id") == name, since=mark
    )
    result: dict[str, Any] = found.json()
    return result


def failures(daemon: Daemon) -> list[dict[str, Any]]:
    """Log events that mean a message was not handled as designed."""
    bad = {"inbound_message_failed", "command_not_understood", "command_crashed",
           "bridge_crashed", "task_failed"}  # fmt: skip
    return [e for e in daemon.events() if e.get("event") in bad or "exception" in e]


# --- 1. hostile numbers: answered once, never a crash, never a loop --------------------

HOSTILE_COMMANDS = [
    ("pv_grid", HUGE),
    ("pv_feed", f'{{"pGrid": 100, "ts": {HUGE}}}'),
    ("pv_feed", '{"pGrid": 1e400}'),
    ("pv_solar", "NaN"),
    ("change_charging_power", HUGE),
    ("change_charging_power", '{"charging_power": 1e400}'),
    ("set", f'{{"amp": {HUGE}}}'),
    ("set", '{"amp": NaN}'),
    ("set_phase", f'{{"phase": 1, "id": {HUGE}}}'),
    ("start_charging", '{"ts": -1e400}'),
    ("energy_limit", '"1e400"'),
    ("next_trip_time", HUGE),
]


async def restarted_with_nothing_owed(daemon: Daemon, probe: MqttProbe, topics: Topics) -> None:
    """Stop ``daemon`` and start it again: the only result then is a new barrier's (what
    was refused before is not answered again), and neither run logged a failure."""
    assert await daemon.end(signal.SIGTERM) == 0
    again = Daemon(daemon.config)
    await again.start()
    try:
        mark = probe.mark()
        await barrier(probe, topics, "restarted")
        assert [r["id"] for r in results(probe, topics, mark)] == ["restarted"]
    finally:
        assert await again.end(signal.SIGTERM) == 0
    assert failures(daemon) == []
    assert failures(again) == []


async def test_hostile_numbers_are_refused_with_a_reason_and_the_bridge_serves_on(
    broker: MosquittoBroker, simulator: Simulator, tmp_path: Path
) -> None:
    garage = simulator.charger("012345")
    async with running_daemon(broker, simulator, tmp_path) as (daemon, probe, topics):
        mark = probe.mark()
        for service, payload in HOSTILE_COMMANDS:
            await probe.publish(topics.command("garage", service), payload)
        await barrier(probe, topics, "after")
        answered = results(probe, topics, mark)
        assert len(answered) == len(HOSTILE_COMMANDS) + 1, answered  # each once
        for result in answered[:-1]:
            assert result["ok"] is False, result
            assert "internal error" not in result["error"], result
            assert "could not be handled" not in result["error"], result
        assert garage.set_calls == [{"psm": 0}]  # only the barrier reached the charger
        assert daemon.running
        # A poison message must not come back after a restart either.
        await restarted_with_nothing_owed(daemon, probe, topics)


async def test_a_status_value_no_float_holds_does_not_stop_polls_with_a_pv_feed(
    broker: MosquittoBroker, simulator: Simulator, tmp_path: Path
) -> None:
    garage = simulator.charger("012345")
    async with running_daemon(broker, simulator, tmp_path) as (daemon, probe, topics):
        garage.faults.values["pgrid"] = int(HUGE)
        mark = probe.mark()
        await probe.publish(topics.command("garage", "pv_grid"), "-1500")
        await until(lambda: garage.set_calls and "ids" in garage.set_calls[-1], "the feed wrote")
        garage.amp = 11  # polls go on: the change shows
        await probe.wait_text(topics.state("garage", "charging_current"), "11", since=mark)
        assert probe.last_text(topics.availability("garage")) == "online"
    assert failures(daemon) == []


# --- 2. oversized payloads: refused before they are stored or parsed --------------------


async def test_oversized_payloads_are_refused_and_never_stored(
    broker: MosquittoBroker, simulator: Simulator, tmp_path: Path
) -> None:
    async with running_daemon(broker, simulator, tmp_path) as (daemon, probe, topics):
        mark = probe.mark()
        big = b"x" * 100_000
        await probe.publish(topics.command("garage", "stop_charging"), big)
        await probe.publish(topics.command("garage", "pv_feed"), b"[" + b"1," * 50_000 + b"1]")
        # Larger than the bridge takes at all: the broker drops it instead of sending it.
        await probe.publish(topics.command("garage", "stop_charging"), b"y" * 2_000_000)
        await barrier(probe, topics, "after")
        answered = results(probe, topics, mark)
        assert [r["error"] for r in answered[:-1]] == [
            "payload of 100000 bytes is larger than 4096 bytes",
            "payload of 100003 bytes is larger than 4096 bytes",
        ], answered
    journal = sqlite3.connect(tmp_path / "state" / f"{_client_id(daemon)}.journal")
    stored = journal.execute("SELECT service FROM commands").fetchall()
    journal.close()
    assert stored == [("set_phase",)]  # the barrier only: the oversized ones left no entry
    assert failures(daemon) == []


def _client_id(daemon: Daemon) -> str:
    import yaml

    return str(yaml.safe_load(daemon.config.read_text())["mqtt"]["client_id"])


# --- 3. a full disk: the journal degrades, the bridge goes on -------------------------


async def test_a_full_disk_refuses_commands_with_the_cause_and_heals_by_itself(
    broker: MosquittoBroker, simulator: Simulator, tmp_path: Path, small_disk: Path
) -> None:
    garage = simulator.charger("012345")
    async with running_daemon(broker, simulator, tmp_path, state_dir=small_disk) as (
        daemon, probe, topics,
    ):  # fmt: skip
        await barrier(probe, topics, "before")
        filler = fill(small_disk)
        start = probe.mark()

        def answered() -> dict[Any, dict[str, Any]]:
            return {m.json()["id"]: m.json() for m in probe.since(start, topics.result("garage"))}

        def waiting() -> int:
            return [e["event"] for e in daemon.events()].count("command_waits_for_journal")

        refused: dict[str, Any] | None = None
        waited: list[int] = []
        for amp in range(6, 17):  # the WAL may hold a few more writes in its free pages
            await probe.publish(topics.command("garage", "change_charging_power"),
                                json.dumps({"charging_power": amp, "id": amp}))  # fmt: skip
            # Journaled in the WAL's last free page, its running mark may find none: it
            # waits for the disk, unanswered (never refused while its row says queued).
            await until(lambda: amp in answered() or waiting() > len(waited))  # noqa: B023
            if amp not in answered():
                waited.append(amp)
            elif not answered()[amp]["ok"]:
                refused = answered()[amp]
                break
        assert refused is not None, "the full disk never showed"
        assert refused["error"].startswith("not run: the journal cannot store it"), refused
        assert "full" in refused["error"], refused
        assert all(call.get("amp") != refused["id"] for call in garage.set_calls)
        # Polling and publishing go on, and the bridge says what is wrong.
        mark = probe.mark()
        garage.amp = 7 if garage.amp != 7 else 8
        await probe.wait_text(
            topics.state("garage", "charging_current"), str(garage.amp), since=mark
        )
        info = await probe.wait_for(
            topics.bridge_info, lambda m: m.json()["journal"]["ok"] is False
        )
        assert "full" in info.json()["journal"]["error"]
        filler.unlink()  # space returns
        await probe.publish(topics.command("garage", "change_charging_power"),
                            json.dumps({"charging_power": 12, "id": "healed"}))  # fmt: skip
        await until(lambda: "healed" in answered())
        assert answered()["healed"]["ok"] is True, answered()["healed"]
        assert garage.amp == 12
        # What waited ran once the disk healed, before the command sent after it.
        assert [answered()[amp]["ok"] for amp in waited] == [True] * len(waited), answered()
        await probe.wait_for(topics.bridge_info, lambda m: m.json()["journal"]["ok"] is True)
        assert daemon.running
    events = [e["event"] for e in daemon.events()]
    assert events.count("journal_write_failed") == 1  # once, not per command
    assert "journal_recovered" in events
    assert failures(daemon) == []


async def test_a_full_disk_at_start_is_one_clear_line_not_a_crash_loop(
    broker: MosquittoBroker, simulator: Simulator, tmp_path: Path, small_disk: Path
) -> None:
    raw = make_settings(broker, simulator)
    raw["state_dir"] = str(small_disk / "state")
    fill(small_disk)
    daemon = Daemon(write_config(tmp_path, raw))
    await daemon.start()
    code = await daemon.wait()
    assert code == 2
    text = daemon.stderr.decode()
    assert "cannot open the command journal" in text
    assert str(small_disk / "state") in text
    assert "Traceback" not in text


# --- 4. state files ---------------------------------------------------------------------


async def test_a_corrupt_journal_is_moved_aside_and_the_bridge_starts(
    broker: MosquittoBroker, simulator: Simulator, tmp_path: Path
) -> None:
    raw = make_settings(broker, simulator)
    state = tmp_path / "state"
    state.mkdir()
    raw["state_dir"] = str(state)
    journal = state / f"{raw['mqtt']['client_id']}.journal"
    journal.write_bytes(b"SQLite format 3\0" + os.urandom(3000))  # a torn, garbled file
    topics = Topics(raw["mqtt"]["base_topic"])
    daemon = Daemon(write_config(tmp_path, raw))
    await daemon.start()
    try:
        async with MqttProbe(broker.host, broker.port, [f"{topics.base}/#"]) as probe:
            await probe.wait_text(topics.availability("garage"), "online")
            await barrier(probe, topics, "works")
    finally:
        assert await daemon.end(signal.SIGTERM) == 0
    moved = [e for e in daemon.events() if e["event"] == "journal_corrupt"]
    assert len(moved) == 1
    assert Path(moved[0]["moved_to"]).exists()  # noqa: ASYNC240 - after the run
    assert oct(journal.stat().st_mode & 0o777) == "0o600"


@pytest.fixture(params=["not-a-folder", "read-only-mount"])
def unusable_state_dir(request: pytest.FixtureRequest, tmp_path: Path) -> Any:
    if request.param == "not-a-folder":  # a file where the folder should be
        (tmp_path / "occupied").write_text("")
        yield tmp_path / "occupied" / "state"
        return
    with mounted_small_disk(tmp_path, size="64k", options="ro", name="read-only") as mount:
        yield mount / "state"


async def test_a_state_dir_it_cannot_write_is_one_clear_line_and_exit_2(
    broker: MosquittoBroker, simulator: Simulator, tmp_path: Path, unusable_state_dir: Path
) -> None:
    raw = make_settings(broker, simulator)
    raw["state_dir"] = str(unusable_state_dir)
    daemon = Daemon(write_config(tmp_path, raw))
    await daemon.start()
    assert await daemon.wait() == 2
    text = daemon.stderr.decode()
    assert "cannot open the command journal" in text, text
    assert str(unusable_state_dir) in text
    assert "Traceback" not in text


async def test_the_journals_wal_and_shm_files_are_private(
    broker: MosquittoBroker, simulator: Simulator, tmp_path: Path
) -> None:
    async with running_daemon(broker, simulator, tmp_path) as (_, probe, topics):
        await barrier(probe, topics, "journaled")
        state = tmp_path / "state"
        files = {p.name.rsplit(".", 1)[-1]: p for p in state.iterdir()}
        for name, path in files.items():
            if name.startswith("journal"):
                assert path.stat().st_mode & 0o077 == 0, (path, oct(path.stat().st_mode))
        assert any(name == "journal-wal" for name in files), files


async def test_what_a_charger_told_reaches_the_file_once_the_disk_takes_it(
    broker: MosquittoBroker, simulator: Simulator, tmp_path: Path
) -> None:
    # What a charger tells once (its facts at the first answer; a local one's serial) was
    # written then or never: a state_dir that refused that one write (full) left it out
    # of {client_id}.chargers.json for good, though the disk healed minutes later, and a
    # restart no longer knew it (the serial check against a DHCP swap, the facts).
    raw = make_settings(broker, simulator, scan_interval=0.3)
    state = tmp_path / "state"
    raw["state_dir"] = str(state)
    raw["mqtt"]["keepalive"] = 8  # the bridge info, and the retry with it, every 2 s
    memory = state / f"{raw['mqtt']['client_id']}.chargers.json"
    blocker = memory.with_name(memory.name + ".tmp")
    blocker.mkdir(parents=True)  # its replacement cannot be written: as a full disk
    topics = Topics(raw["mqtt"]["base_topic"])
    daemon = Daemon(write_config(tmp_path, raw))
    await daemon.start()
    try:
        async with MqttProbe(broker.host, broker.port, [f"{topics.base}/#"]) as probe:
            await probe.wait_text(topics.availability("garage"), "online")
            await until(lambda: any(e.get("event") == "remembered_not_saved"
                                    for e in daemon.events()), "the write refused")  # fmt: skip
            blocker.rmdir()  # the disk takes writes again; the charger tells nothing new
            await until(memory.exists, "the memory written", within=20)
    finally:
        await daemon.end(signal.SIGTERM)
    told = json.loads(memory.read_text())["chargers"]["garage"]
    assert (told["facts"]["model"], told["facts"]["sw_version"]) == ("go-eCharger_V4", "60.4")
