"""A journaled command whose "running" mark the disk refuses waits; it is never refused.

Found by breaking it (bench/full_disk.py --kill): a command journaled before the disk
filled reached its turn, its running mark failed, and it was refused "not run: the
journal cannot store it" while its row stayed *queued* (the refusal's row was owed until
the disk healed). A kill -9 before that, and the next process ran it: its sender, told
"not run", may have sent it again, and it reached the charger twice. Now it waits at the
head of its charger's queue until the journal writes again, then runs (or is refused as
too old once max_command_age passes); killed meanwhile, the next process runs it once.

A real journal on disk (FullDisk: its writes fail on demand), the real desk and runner,
a simulated charger behind a fake transport.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from goe2mqtt.bridge.desk import CommandDesk
from goe2mqtt.commands.journal import PUBLISHED, QUEUED, Journal
from goe2mqtt.commands.runner import CommandRunner
from goe2mqtt.mqtt.session import InboundMessage
from tests.unit.test_journal_owed import TOPICS, Broker, FullDisk
from tests.unit.test_runner import FakeCharger


class Door:
    """A charger as the desk sees it (ChargerDoor), with a real runner."""

    def __init__(
        self, view: FakeCharger, desk: CommandDesk, max_command_age: float, max_queued: int
    ) -> None:
        self.view = view
        self.runner = CommandRunner("garage", view, view.transport.set, sink=desk,
                                    max_command_age=max_command_age, confirm_delays=(0.0,),
                                    max_queued=max_queued)  # fmt: skip

    def offer_reading(self, service: str, payload: bytes, *, retained: bool) -> str | None:
        return None


class Bridge:
    """One process's desk and runner on the journal file; ``kill`` throws it away."""

    def __init__(
        self,
        journal: Journal,
        view: FakeCharger,
        *,
        max_command_age: float = 60,
        max_queued: int = 20,
        essential: Callable[[InboundMessage], bool] = lambda message: False,
    ) -> None:
        self.journal = journal
        chargers: dict[str, Door] = {}  # filled once the desk exists, as the bridge does
        self.desk = CommandDesk(journal, chargers, topics=TOPICS, configured=["garage"],
                                answers_unknown=True, secrets=[], essential=essential)  # fmt: skip
        self.door = chargers["garage"] = Door(view, self.desk, max_command_age, max_queued)
        self.broker = Broker()
        self._tasks = [
            asyncio.create_task(self.door.runner.serve()),
            asyncio.create_task(self.desk.results.publish_forever(self.broker)),
        ]

    def send(self, request_id: str, amps: int, mid: int) -> None:
        payload = json.dumps({"charging_power": amps, "id": request_id}).encode()
        message = InboundMessage("x", payload, retain=False, mid=mid)
        self.desk.accept("garage", "change_charging_power", message)

    def results(self) -> list[tuple[str, bool, str]]:
        return [(r["id"], r["ok"], r.get("error", "")) for r in self.broker.results]

    async def kill(self) -> None:
        """kill -9: nothing more is written; the memory is gone."""
        for task in self._tasks:
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)
        self.journal.close()  # the lock goes with the process

    async def stop(self) -> None:
        self.door.runner.stop()
        await self._tasks[0]
        self._tasks[1].cancel()
        await asyncio.gather(self._tasks[1], return_exceptions=True)
        self.journal.close()


async def until(condition: Callable[[], bool]) -> None:
    """Let the loop run until ``condition`` holds (bounded: a hang is a failure)."""
    async with asyncio.timeout(10):
        while not condition():  # noqa: ASYNC110 - the runner's and the desk's state
            await asyncio.sleep(0.01)


async def _queued_when_the_disk_fills(
    tmp_path: Path, third: bool = False, **kwargs: Any
) -> tuple[Bridge, FullDisk]:
    """Command "first" ran and its result is out; "second" is journaled (queued) and
    reaches its turn while a poll holds the charger (and "third", if asked, is queued
    behind it); then the disk fills, before the running mark of "second"."""
    view = FakeCharger()
    await view.refresh()
    journal = FullDisk(tmp_path / "j.journal")
    bridge = Bridge(journal, view, **kwargs)
    bridge.send("first", 6, mid=1)
    await until(lambda: journal.count() == {PUBLISHED: 1})
    async with view.lock:  # a poll: the runner takes "second" and waits for the charger
        bridge.send("second", 7, mid=2)
        await until(lambda: bridge.door.runner.running is not None)
        if third:
            bridge.send("third", 8, mid=3)
        journal.full = True
    return bridge, journal


def _waiting(bridge: Bridge) -> bool:
    """A command waits for the journal: not at the charger, still counted queued."""
    runner = bridge.door.runner
    return runner.running is None and runner.queued == 1 and not bridge.desk.journal_info()["ok"]


def _idle(bridge: Bridge) -> bool:
    """The runner has nothing left, and one result waits (held, or on its way)."""
    runner = bridge.door.runner
    return runner.running is None and runner.queued == 0 and bridge.desk.results.pending == 1


def _amps(view: FakeCharger) -> list[Any]:
    return [call["amp"] for call in view.transport.sets if "amp" in call]


async def test_a_queued_command_waits_for_the_disk_and_then_runs_once(tmp_path: Path) -> None:
    bridge, journal = await _queued_when_the_disk_fills(tmp_path)
    await until(lambda: _waiting(bridge) or len(bridge.results()) > 1)
    assert _waiting(bridge)
    assert _amps(bridge.door.view) == [6]
    assert [r[0] for r in bridge.results()] == ["first"]  # no "not run" for the second
    journal.full = False
    bridge.desk.retry_journal()  # the bridge info's heartbeat: the journal heals
    await until(lambda: len(bridge.results()) == 2)
    assert bridge.results() == [("first", True, ""), ("second", True, "")]
    assert _amps(bridge.door.view) == [6, 7]
    await until(lambda: journal.count() == {PUBLISHED: 2})
    await bridge.stop()
    # A restart: nothing owed, nothing runs again.
    again = Bridge(Journal(tmp_path / "j.journal"), bridge.door.view)
    again.desk.recover(again.broker)
    await until(lambda: again.door.runner.queued == 0)
    assert again.results() == []
    assert _amps(again.door.view) == [6, 7]
    await again.stop()


async def test_killed_while_it_waits_the_next_process_runs_it_exactly_once(
    tmp_path: Path,
) -> None:
    bridge, _ = await _queued_when_the_disk_fills(tmp_path)
    await until(lambda: _waiting(bridge) or len(bridge.results()) > 1)
    before = bridge.results()
    await bridge.kill()  # still full: the journal says second is queued
    assert before == [("first", True, "")], "the waiting command was answered before the kill"
    after = Journal(tmp_path / "j.journal")  # the disk freed, a new process
    assert [json.loads(e.payload)["id"] for e in after.entries(QUEUED)] == ["second"]
    again = Bridge(after, bridge.door.view)
    again.desk.recover(again.broker)
    await until(lambda: again.results() != [])
    assert again.results() == [("second", True, "")]
    assert _amps(bridge.door.view) == [6, 7]  # each command reached the charger once
    await until(lambda: after.count() == {PUBLISHED: 2})
    await again.stop()


async def test_one_that_grows_too_old_meanwhile_is_refused_stale_and_that_is_owed(
    tmp_path: Path,
) -> None:
    bridge, journal = await _queued_when_the_disk_fills(tmp_path, max_command_age=1)
    await until(lambda: _idle(bridge))  # its max age passed while it waited
    await bridge.desk.results.flush(bridge.broker)  # what may go out now, out
    assert bridge.results() == [("first", True, "")]  # held: its row still says queued
    assert _amps(bridge.door.view) == [6]
    journal.full = False
    bridge.desk.retry_journal()  # writes what it owes: the refusal's row, then it goes out
    await until(lambda: journal.count() == {PUBLISHED: 2})
    ((_, ok, error),) = bridge.results()[1:]
    assert not ok
    assert error.startswith("stale: received"), error
    await bridge.stop()


async def test_a_stop_while_it_waits_leaves_it_queued_for_the_next_start(
    tmp_path: Path,
) -> None:
    bridge, _ = await _queued_when_the_disk_fills(tmp_path)
    await until(lambda: _waiting(bridge) or len(bridge.results()) > 1)
    await bridge.stop()  # SIGTERM: the wait ends at once, nothing answered, nothing sent
    assert [r[0] for r in bridge.results()] == ["first"]
    assert _amps(bridge.door.view) == [6]
    again = Bridge(Journal(tmp_path / "j.journal"), bridge.door.view)
    again.desk.recover(again.broker)
    await until(lambda: again.results() != [])
    assert again.results() == [("second", True, "")]
    await again.stop()


async def test_a_sites_write_runs_from_memory_rather_than_wait(tmp_path: Path) -> None:
    """The fuse does not wait for a disk: a site's write journaled before the disk
    filled runs when its turn comes, as one the journal could not store at all."""
    bridge, _ = await _queued_when_the_disk_fills(
        tmp_path, essential=lambda message: json.loads(message.payload)["id"] == "second"
    )
    await until(lambda: len(bridge.results()) == 2)
    assert bridge.results() == [("first", True, ""), ("second", True, "")]
    assert _amps(bridge.door.view) == [6, 7]
    await bridge.stop()


async def test_a_sites_write_passes_a_users_command_that_waits(tmp_path: Path) -> None:
    """A user's command waiting for the disk must not hold the fuse's write back: the
    site's write runs first, and the user's waits again after it."""
    bridge, journal = await _queued_when_the_disk_fills(
        tmp_path, essential=lambda message: json.loads(message.payload)["id"] == "site"
    )
    await until(lambda: _waiting(bridge) or len(bridge.results()) > 1)
    bridge.send("site", 8, mid=3)  # not journaled (full): it runs from memory
    await until(lambda: len(bridge.results()) > 1)
    assert bridge.results() == [("first", True, ""), ("site", True, "")]
    await until(lambda: _waiting(bridge))
    assert _amps(bridge.door.view) == [6, 8]
    journal.full = False
    bridge.desk.retry_journal()
    await until(lambda: len(bridge.results()) == 3)
    assert bridge.results()[2] == ("second", True, "")
    assert _amps(bridge.door.view) == [6, 8, 7]
    await bridge.stop()


@pytest.mark.parametrize("then", ["the disk heals", "kill -9"])
async def test_a_refusal_at_its_turn_goes_out_only_once_the_journal_holds_it(
    tmp_path: Path, then: str
) -> None:
    """The same defect by another way: refused at its turn for a reason of its own (its
    charger went offline: the waiting commands are refused) while the disk was full, a
    command's row stayed queued, its refusal went out, and after a kill -9 the next
    process ran it."""
    bridge, journal = await _queued_when_the_disk_fills(tmp_path, third=True)
    runner = bridge.door.runner
    await until(lambda: runner.running is None and runner.queued == 2)  # 2nd waits, 3rd behind
    runner.refuse_waiting("charger offline: unplugged")  # as its Charger does when offline
    await until(lambda: _waiting(bridge) and bridge.desk.results.pending == 1)
    await bridge.desk.results.flush(bridge.broker)  # what may go out now, out
    assert bridge.results() == [("first", True, "")]  # the refusal waits for the disk
    if then == "the disk heals":
        journal.full = False
        bridge.desk.retry_journal()
        await until(lambda: journal.count() == {PUBLISHED: 3})
        offline = ("third", False, "charger offline: unplugged")
        assert sorted(bridge.results()) == [("first", True, ""), ("second", True, ""), offline]
        await bridge.stop()
    else:
        await bridge.kill()
    again = Bridge(Journal(tmp_path / "j.journal"), bridge.door.view)
    again.desk.recover(again.broker)
    await until(lambda: again.door.runner.queued == 0 and again.door.runner.running is None)
    await until(lambda: again.desk.results.pending == 0)
    if then == "kill -9":  # never told anything: each runs now, once
        assert again.results() == [("second", True, ""), ("third", True, "")]
        assert _amps(bridge.door.view) == [6, 7, 8]
    else:  # answered: nothing runs again
        assert again.results() == []
        assert _amps(bridge.door.view) == [6, 7]
    await again.stop()


async def test_the_command_that_waits_counts_towards_a_full_queue(tmp_path: Path) -> None:
    """The command waiting for the journal at the head of its charger's queue counts
    towards max_queued, as it does in ``queued``: not counted, the first command after
    the disk healed was taken beside a full queue (max_queued + 1 waiting a charger)."""
    bridge, journal = await _queued_when_the_disk_fills(tmp_path, third=True, max_queued=2)
    runner = bridge.door.runner
    await until(lambda: runner.running is None and runner.queued == 2)  # 2nd waits, 3rd behind
    journal.full = False  # the disk freed: the next write would heal it
    bridge.send("fourth", 9, mid=4)
    await until(lambda: len(bridge.results()) > 1)
    results = {request_id: (ok, error) for request_id, ok, error in bridge.results()}
    assert results["fourth"] == (False, "queue full: 2 commands wait for garage"), results
    bridge.desk.retry_journal()
    await until(lambda: len(bridge.results()) == 4)
    assert bridge.results()[2:] == [("second", True, ""), ("third", True, "")]
    assert _amps(bridge.door.view) == [6, 7, 8]
    await bridge.stop()
