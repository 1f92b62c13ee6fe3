"""What the journal could not store while the disk was full, written once it can.

Found by breaking it: a command journaled before the disk filled, refused "not run: the
journal cannot store it" when its turn came (its *running* mark failed), kept its
*queued* row. The disk healed, the bridge was restarted (a plain SIGTERM, hours later
or within max_command_age) and the journal ran the command it had refused, with a second
result. Likewise a command answered while the disk was full (run, or refused "charger
offline") left its row *queued* or *running*: the next start ran it again or answered
"outcome unknown" for a command whose result had gone out. The desk now keeps each
result the journal could not store and writes it (and its "published" mark) as soon as
the journal can write again. (Such a command is no longer refused when its mark fails:
it waits for the disk, tests/unit/test_journal_wait.py; refused as too old meanwhile, its
refusal is owed like these. A refusal of a command whose row still says queued goes out
only once the journal holds it: out before, a kill -9 left the row queued and the next
start ran a command its sender was told had not run.)
"""

from __future__ import annotations

import asyncio
import json
from pathlib import Path
from typing import Any

import pytest

from goe2mqtt.bridge.desk import CommandDesk
from goe2mqtt.commands.journal import DONE, PUBLISHED, QUEUED, RUNNING, Journal
from goe2mqtt.commands.journal import JournalWriteFailed as WriteFailed
from goe2mqtt.commands.outcomes import (
    CommandStats,
    JournalWait,
    QueuedCommand,
    RepeatFilter,
    rejection,
)
from goe2mqtt.commands.payloads import command_result
from goe2mqtt.mqtt.session import InboundMessage
from goe2mqtt.mqtt.topics import Topics
from tests.unit.test_desk import FakeCharger

TOPICS = Topics("goe2mqtt")
FULL = "cannot write j.journal: database or disk is full"


class FullDisk(Journal):
    """A real journal on disk whose every write fails while ``full`` is set."""

    full = False

    def _fail(self) -> None:
        if self.full:
            raise WriteFailed(FULL)

    def record(self, *args: Any, **kwargs: Any) -> int | None:
        self._fail()
        return super().record(*args, **kwargs)

    def start(self, *args: Any, **kwargs: Any) -> None:
        self._fail()
        super().start(*args, **kwargs)

    def finish(self, *args: Any, **kwargs: Any) -> None:
        self._fail()
        super().finish(*args, **kwargs)

    def settle(self, *args: Any, **kwargs: Any) -> None:
        self._fail()
        super().settle(*args, **kwargs)

    def sending(self, *args: Any, **kwargs: Any) -> None:
        self._fail()
        super().sending(*args, **kwargs)

    def taken(self, *args: Any, **kwargs: Any) -> None:
        self._fail()
        super().taken(*args, **kwargs)

    def published(self, *args: Any, **kwargs: Any) -> None:
        self._fail()
        super().published(*args, **kwargs)

    def probe(self) -> None:
        self._fail()
        super().probe()


class Broker:
    """A result sender whose broker takes every result at once."""

    connected = True

    def __init__(self) -> None:
        self.results: list[dict[str, Any]] = []
        self._next_id = 0

    async def publish_once(self, topic: str, payload: str | bytes, **kw: Any) -> None:
        self._next_id += 1
        if kw.get("on_sent"):
            kw["on_sent"](self._next_id)
        if kw.get("on_taken"):
            kw["on_taken"](self._next_id)
        self.results.append(json.loads(payload))

    def resume_once(self, topic: str, payload: str | bytes, packet_id: int, *, taken: bool) -> None:
        raise AssertionError("nothing was in flight")


def _desk(journal: Journal) -> tuple[CommandDesk, FakeCharger]:
    charger = FakeCharger()
    desk = CommandDesk(journal, {"garage": charger}, topics=TOPICS, configured=["garage"],
                       answers_unknown=True, secrets=[])  # fmt: skip
    charger.runner.sink = desk
    charger.runner.stats = CommandStats()  # type: ignore[attr-defined]
    return desk, charger


async def _publish_all(desk: CommandDesk, broker: Broker) -> None:
    """Let the results' way out run until nothing is owed."""
    task = asyncio.create_task(desk.results.publish_forever(broker))
    try:
        await desk.results.flush(broker, within=5)
    finally:
        task.cancel()
    assert desk.results.pending == 0


def _accept(desk: CommandDesk, request_id: str, mid: int) -> QueuedCommand:
    payload = json.dumps({"id": request_id}).encode()
    desk.accept("garage", "stop_charging", InboundMessage("x", payload, retain=False, mid=mid))
    return desk._chargers["garage"].runner.submitted[-1]  # type: ignore[attr-defined,no-any-return]


def _refused_at_start(desk: CommandDesk, queued: QueuedCommand) -> None:
    """What the runner does when the journal cannot mark a command running: it waits
    (tests/unit/test_journal_wait.py), here until it is too old."""
    with pytest.raises(JournalWait):
        desk.command_started(queued, [{"frc": 1}])
    stale = "stale: received 301 s ago, max_command_age is 300 s"
    desk.command_finished(queued, rejection(queued, stale, RepeatFilter()))


def _ran(desk: CommandDesk, queued: QueuedCommand) -> None:
    request_id = json.loads(queued.payload)["id"]
    desk.command_started(queued, [{"frc": 1}])
    desk.command_finished(
        queued, command_result("stop_charging", ok=True, request_id=request_id, applied=[])
    )


@pytest.mark.parametrize("what", ["stale at its turn", "offline", "ran"])
async def test_a_command_answered_while_the_disk_was_full_is_not_answered_again_after_a_restart(
    tmp_path: Path, what: str
) -> None:
    journal = FullDisk(tmp_path / "j.journal")
    desk, _ = _desk(journal)
    broker = Broker()
    queued = _accept(desk, "first", mid=1)  # journaled (queued) before the disk filled
    if what == "ran":
        desk.command_started(queued, [{"frc": 1}])  # marked running; then the disk fills
    journal.full = True
    if what == "stale at its turn":
        _refused_at_start(desk, queued)
    elif what == "offline":
        desk.command_finished(queued, rejection(queued, "charger offline: x", RepeatFilter()))
    else:
        desk.command_finished(
            queued, command_result("stop_charging", ok=True, request_id="first", applied=[])
        )
    if what == "ran":
        await _publish_all(desk, broker)  # out from memory: a restart never runs it again
    else:  # its row says queued: the refusal goes out once the journal holds it
        assert desk.results.pending == 1
        assert broker.results == []
    journal.full = False  # the disk takes writes again: the next command runs
    _ran(desk, _accept(desk, "second", mid=2))
    await _publish_all(desk, broker)
    assert [r["id"] for r in broker.results] == ["first", "second"]
    assert desk.journal_info()["ok"] is True
    journal.close()
    # A restart (a SIGTERM long after the disk healed): nothing is owed, nothing runs.
    after = Journal(tmp_path / "j.journal")
    desk_after, charger_after = _desk(after)
    desk_after.recover(broker)
    assert [json.loads(c.payload)["id"] for c in charger_after.submitted] == []
    assert desk_after.results.owed() == []
    assert after.count() == {PUBLISHED: 2}


async def test_the_heartbeat_writes_what_was_owed_when_no_command_comes(tmp_path: Path) -> None:
    journal = FullDisk(tmp_path / "j.journal")
    desk, _ = _desk(journal)
    queued = _accept(desk, "first", mid=1)
    journal.full = True
    _refused_at_start(desk, queued)
    journal.full = False
    desk.write_owed()  # the bridge info's loop calls it (bridge.process)
    assert desk.journal_info()["ok"] is True
    assert journal.count() == {DONE: 1}
    await _publish_all(desk, Broker())  # held until now: its row said queued
    assert journal.count() == {PUBLISHED: 1}


async def test_the_next_command_heals_the_journal_and_writes_what_it_owed(
    tmp_path: Path,
) -> None:
    journal = FullDisk(tmp_path / "j.journal")
    desk, _ = _desk(journal)
    broker = Broker()
    queued = _accept(desk, "first", mid=1)
    desk.command_started(queued, [{"frc": 1}])
    journal.full = True
    desk.command_finished(
        queued, command_result("stop_charging", ok=True, request_id="first", applied=[])
    )
    journal.full = False
    await _publish_all(desk, broker)  # went out while the mark was still owed
    assert journal.count() == {RUNNING: 1}
    _ran(desk, _accept(desk, "second", mid=2))  # a write that succeeds: heals it all
    await _publish_all(desk, broker)
    assert journal.count() == {PUBLISHED: 2}
    assert [r["id"] for r in broker.results] == ["first", "second"]
    assert [r["ok"] for r in broker.results] == [True, True]


async def test_a_result_not_yet_out_when_the_disk_heals_stays_owed(tmp_path: Path) -> None:
    journal = FullDisk(tmp_path / "j.journal")
    desk, _ = _desk(journal)
    queued = _accept(desk, "first", mid=1)
    desk.command_started(queued, [{"frc": 1}])
    journal.full = True
    desk.command_finished(
        queued, command_result("stop_charging", ok=True, request_id="first", applied=[])
    )
    journal.full = False
    desk.write_owed()  # before the broker took it: done, still owed after a restart
    assert [(e.state, e.result and e.result["id"]) for e in journal.entries(DONE)] == [
        (DONE, "first")
    ]
    assert journal.entries(RUNNING) == []
    await _publish_all(desk, Broker())
    assert journal.count() == {PUBLISHED: 1}


def test_what_is_owed_waits_while_the_disk_stays_full(tmp_path: Path) -> None:
    journal = FullDisk(tmp_path / "j.journal")
    desk, _ = _desk(journal)
    queued = _accept(desk, "first", mid=1)
    journal.full = True
    _refused_at_start(desk, queued)
    failed = desk.journal_info()["failed_writes"]
    desk.write_owed()  # still full: tried, not lost, said no more than once
    assert desk.journal_info()["ok"] is False
    assert desk.journal_info()["failed_writes"] == failed + 1
    assert journal.count() == {QUEUED: 1}
    journal.full = False
    desk.write_owed()
    assert journal.count() == {DONE: 1}


def test_a_disk_freed_while_no_command_comes_heals_the_journal(tmp_path: Path) -> None:
    """Found by breaking it: with nothing owed (the one command refused before it was
    stored), only a command's write could heal the journal; a disk freed while none came
    left bridge/info, /readyz (503) and the container's HEALTHCHECK failing for good."""
    journal = FullDisk(tmp_path / "j.journal")
    desk, _ = _desk(journal)
    journal.full = True
    desk.accept("garage", "stop_charging", InboundMessage("x", b"{}", retain=False, mid=1))
    assert desk.journal_info()["ok"] is False
    desk.retry_journal()  # still full: still failing
    assert desk.journal_info()["ok"] is False
    journal.full = False
    desk.retry_journal()  # the bridge info's loop calls it (bridge.process)
    assert desk.journal_info()["ok"] is True
