"""The command desk with stand-ins for chargers and the broker: what it journals, what
it answers, and that nothing it is handed can make it raise."""

from __future__ import annotations

import contextlib
import json
import sqlite3
import time
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pytest
import structlog

from goe2mqtt.bridge.desk import CommandDesk
from goe2mqtt.commands.journal import DONE, QUEUED, Journal, JournalWriteFailed
from goe2mqtt.commands.outcomes import (
    CommandSink,
    QueuedCommand,
    RefusedDeliveries,
    RepeatFilter,
    rejection,
)
from goe2mqtt.commands.services import Command
from goe2mqtt.mqtt.session import InboundMessage
from goe2mqtt.mqtt.topics import Topics

TOPICS = Topics("goe2mqtt")


class FakeRunner:
    """Takes commands as a CommandRunner does: queues them, or refuses through the sink."""

    def __init__(self) -> None:
        self.sink: CommandSink | None = None
        self.submitted: list[QueuedCommand] = []
        self.parsed: list[Command] = []
        self.refused = 0

    def submit(self, queued: QueuedCommand, command: Command) -> None:
        self.submitted.append(queued)
        self.parsed.append(command)

    def refuse(self, command: QueuedCommand, reason: str) -> None:
        self.refused += 1
        assert self.sink is not None
        self.sink.command_finished(command, rejection(command, reason, RepeatFilter()))

    def full(self) -> str | None:
        return None


class FakeCharger:
    """Takes commands (its runner) and PV readings as a Charger does; can be told to blow up."""

    def __init__(self) -> None:
        self.runner = FakeRunner()
        self.readings: list[bytes] = []
        self.explode = False

    @property
    def submitted(self) -> list[QueuedCommand]:
        return self.runner.submitted

    def offer_reading(self, service: str, payload: bytes, *, retained: bool) -> str | None:
        if self.explode:
            raise ZeroDivisionError("a bug in the feed")
        self.readings.append(payload)
        return None


class FailingJournal(Journal):
    """A journal whose writes fail while ``full`` is set: a full disk."""

    full = False

    def record(self, *args: Any, **kwargs: Any) -> int | None:
        if self.full:
            raise JournalWriteFailed("cannot write j.journal: database or disk is full")
        return super().record(*args, **kwargs)


@pytest.fixture
def desk(tmp_path: Path) -> tuple[CommandDesk, FakeCharger, FailingJournal]:
    journal = FailingJournal(tmp_path / "j.journal")
    charger = FakeCharger()
    desk = CommandDesk(
        journal,
        {"garage": charger},
        topics=TOPICS,
        configured=["garage"],
        answers_unknown=True,
        secrets=[],
    )
    charger.runner.sink = desk
    return desk, charger, journal


def _message(payload: bytes, *, retain: bool = False, mid: int | None = 1) -> InboundMessage:
    return InboundMessage(topic="x", payload=payload, retain=retain, mid=mid)


def _owed(desk: CommandDesk) -> list[dict[str, Any]]:
    return [json.loads(payload) for payload in desk.results.owed()]


def test_a_command_is_journaled_and_routed(desk: Any) -> None:
    commands, charger, journal = desk
    commands.accept("garage", "stop_charging", _message(b"{}"))
    assert [c.service for c in charger.submitted] == ["stop_charging"]
    assert journal.count() == {QUEUED: 1}


def test_an_oversized_payload_is_refused_and_not_journaled(desk: Any) -> None:
    commands, charger, journal = desk
    commands.accept("garage", "stop_charging", _message(b"x" * 100_000))
    assert charger.submitted == []
    assert _owed(commands)[0]["error"] == "payload of 100000 bytes is larger than 4096 bytes"
    assert journal.count() == {}


def test_clearing_a_retained_command_is_ignored(desk: Any) -> None:
    commands, charger, journal = desk
    commands.accept("garage", "stop_charging", _message(b"", retain=True))
    assert charger.submitted == []
    assert commands.results.owed() == []
    assert journal.count() == {}


def test_a_bug_while_a_message_is_handled_is_an_answer_not_a_raise(desk: Any) -> None:
    commands, charger, _ = desk
    charger.explode = True
    commands.accept("garage", "pv_grid", _message(b"-1500"))  # must not raise
    (result,) = _owed(commands)
    assert result["ok"] is False
    assert result["error"].startswith("payload could not be handled (ZeroDivisionError)")


def test_a_journal_that_cannot_write_refuses_commands_and_heals(desk: Any) -> None:
    commands, charger, journal = desk
    health: list[bool] = []
    commands._on_health_change = lambda: health.append(commands.journal_error is None)
    journal.full = True
    commands.accept("garage", "stop_charging", _message(b"{}", mid=1))
    commands.accept("garage", "stop_charging", _message(b"{}", mid=2))
    assert charger.submitted == []
    errors = [r["error"] for r in _owed(commands)]
    assert errors == [errors[0]] * 2
    assert errors[0].startswith("not run: the journal cannot store it (cannot write")
    assert commands.journal_info() == {
        "ok": False,
        "error": "cannot write j.journal: database or disk is full",
        "failed_writes": 2,
    }
    journal.full = False
    commands.accept("garage", "stop_charging", _message(b"{}", mid=3))
    assert len(charger.submitted) == 1
    assert commands.journal_info()["ok"] is True
    assert health == [False, True]  # said once each way


def test_a_new_broker_session_forgets_packet_ids(desk: Any) -> None:
    commands, charger, _ = desk
    commands.accept("garage", "stop_charging", _message(b"{}", mid=7))
    redelivered = InboundMessage(topic="x", payload=b"{}", retain=False, mid=7, dup=True)
    commands.accept("garage", "stop_charging", redelivered)
    assert len(charger.submitted) == 1  # the same session: recognised
    commands.session_lost()
    commands.accept("garage", "stop_charging", redelivered)
    assert len(charger.submitted) == 2  # a new session: a new command


def test_a_command_for_an_unknown_charger_is_answered_unstored(desk: Any) -> None:
    commands, _, journal = desk
    commands.accept("nosuch", "stop_charging", _message(b"{}"))
    assert _owed(commands)[0]["error"] == "unknown charger 'nosuch'"
    assert commands.unrouted.rejected == 1
    assert journal.count() == {}


def _rows(path: Path) -> list[tuple[str, bytes]]:
    """The journal file's rows as another reader sees them: what is on disk."""
    with contextlib.closing(sqlite3.connect(path)) as db:
        return [(service, bytes(payload)) for service, payload in
                db.execute("SELECT service, payload FROM commands ORDER BY seq")]  # fmt: skip


@pytest.mark.parametrize(
    ("service", "payload", "retain", "reason"),
    [
        ("change_charging_power", b'{"charging_power": "ten", "id": "r1"}', False,
         "charging_power must be an integer"),
        ("set_phase", b"{broken", False, "payload is not valid JSON"),
        ("frobnicate", b"{}", False, "unknown service 'frobnicate'"),
        ("stop_charging", b'{"ts": "yesterday"}', False, "ts must be a unix time"),
        ("stop_charging", b"{}", True,
         "retained command ignored: publish commands without retain"),
    ],
)  # fmt: skip
def test_a_command_that_could_never_run_is_refused_before_it_is_journaled(
    desk: Any,
    tmp_path: Path,
    service: str,
    payload: bytes,
    retain: bool,
    reason: str,
) -> None:
    commands, charger, _ = desk
    with structlog.testing.capture_logs() as logs:
        commands.accept("garage", service, _message(payload, retain=retain))
    assert charger.submitted == []  # never queued
    (result,) = _owed(commands)
    assert result["ok"] is False
    assert result["error"].startswith(reason), result
    assert charger.runner.refused == 1  # counted with the charger's commands
    assert _rows(tmp_path / "j.journal") == []  # nothing stored
    (logged,) = [e for e in logs if e["event"] == "command_rejected"]
    assert logged["log_level"] == "warning"
    assert logged["reason"].startswith(reason)


def test_a_valid_command_is_journaled_before_accept_returns_and_handed_over_parsed(
    desk: Any, tmp_path: Path
) -> None:
    commands, charger, _ = desk
    payload = b'{"charging_power": 10, "id": "r2"}'
    commands.accept("garage", "change_charging_power", _message(payload))
    # accept runs in the MQTT client's callback, before the PUBACK: the row is on disk.
    assert _rows(tmp_path / "j.journal") == [("change_charging_power", payload)]
    (command,) = charger.runner.parsed
    assert command.arguments == {"charging_power": 10}
    assert command.request_id == "r2"
    assert charger.submitted[0].seq is not None
    assert commands.results.owed() == []  # its result is the runner's to give


def test_a_redelivered_refused_command_is_answered_once(desk: Any, tmp_path: Path) -> None:
    commands, _, _ = desk
    commands.accept("garage", "set_phase", _message(b"{broken", mid=9))
    redelivered = InboundMessage(topic="x", payload=b"{broken", retain=False, mid=9, dup=True)
    commands.accept("garage", "set_phase", redelivered)
    assert len(commands.results.owed()) == 1  # the same delivery: its refusal went out once
    commands.accept("garage", "set_phase", _message(b"{broken", mid=9))  # id used again
    assert len(commands.results.owed()) == 2  # a new delivery: a new answer
    commands.session_lost()
    commands.accept("garage", "set_phase", redelivered)
    assert len(commands.results.owed()) == 3  # a new session: packet ids start afresh
    assert _rows(tmp_path / "j.journal") == []


class _NothingInFlight:
    """A result sender that no earlier run left anything with."""

    connected = False

    async def publish_once(self, topic: str, payload: str | bytes, **_: Any) -> None:
        raise AssertionError("recovery publishes nothing itself")

    def resume_once(self, topic: str, payload: str | bytes, packet_id: int, *, taken: bool) -> None:
        raise AssertionError(f"nothing was in flight, yet {topic} resumed as {packet_id}")


def test_a_journaled_command_that_no_longer_parses_is_refused_on_recovery(
    desk: Any,
) -> None:
    commands, charger, journal = desk
    # Stored by a version that took it (or a hand-edited journal): refused, not run.
    journal.record("garage", "frobnicate", b"{}", retained=False, received=time.time())
    journal.record("garage", "stop_charging", b"{}", retained=False, received=time.time())
    commands.recover(_NothingInFlight())
    assert [c.service for c in charger.submitted] == ["stop_charging"]
    (result,) = _owed(commands)
    assert result["error"] == "unknown service 'frobnicate'"
    assert [e.service for e in journal.entries(DONE)] == ["frobnicate"]


def test_a_sites_queued_writes_from_before_a_crash_are_not_run_but_its_pause(
    desk: Any,
) -> None:
    """Found in review: a site's tcl raise or resume journaled just before a kill -9 ran
    at the restart, decided on a meter reading of before (hours old after a long
    outage), before the site had a fresh one. Only its pause runs (it only lowers the
    draw); a user's command runs as ever."""
    commands, charger, journal = desk
    for payload in (b'{"tcl": 16, "id": "site:house:1"}', b'{"frc": 1, "id": "site:house:2"}',
                    b'{"frc": 0, "id": "site:house:3"}', b'{"frc": 2, "id": "mine"}'):  # fmt: skip
        journal.record("garage", "set", payload, retained=False, received=time.time(),
                       site=b"site:" in payload)  # fmt: skip
    commands.recover(_NothingInFlight())
    assert [json.loads(c.payload)["id"] for c in charger.submitted] == ["site:house:2", "mine"]
    results = _owed(commands)
    assert [r["id"] for r in results] == ["site:house:1", "site:house:3"]
    assert {r["error"] for r in results} == {
        "not run: a site's write from before the restart; the site decides again"
    }


def test_a_sites_pause_from_before_a_restart_goes_first_and_its_resume_is_told(
    desk: Any,
) -> None:
    """Found in review: the pause recovered from the journal went to the end of its
    charger's queue as a user's command would (behind up to 19 users' commands, or
    refused "queue full" behind 20), and the site was never told of the resume it
    refused: the site had forgotten its pause with that resume (sites.json)."""
    commands, charger, journal = desk
    told: list[tuple[str, dict[str, Any]]] = []
    commands._site_write_dropped = lambda name, call: told.append((name, dict(call)))
    for payload, site in ((b'{"frc": 2, "id": "mine"}', False),
                          (b'{"frc": 1, "id": "site:house:2"}', True),
                          (b'{"frc": 0, "id": "site:house:3"}', True)):  # fmt: skip
        journal.record("garage", "set", payload, retained=False, received=time.time(), site=site)
    commands.recover(_NothingInFlight())
    assert [(json.loads(c.payload)["id"], c.first) for c in charger.submitted] == [
        ("mine", False),
        ("site:house:2", True),
    ]
    assert told == [("garage", {"frc": 0})]


def test_a_refusal_on_arrival_does_not_wait_for_the_commands_before_it(desk: Any) -> None:
    commands, charger, _ = desk
    commands.accept("garage", "stop_charging", _message(b'{"id": "first"}', mid=1))
    commands.accept("garage", "set_phase", _message(b'{"phase": 9, "id": "second"}', mid=2))
    # The first still waits in its runner; the second's refusal is out already.
    assert [c.service for c in charger.submitted] == ["stop_charging"]
    assert [r["id"] for r in _owed(commands)] == ["second"]


def test_the_memory_of_refused_deliveries_is_bounded() -> None:
    refused = RefusedDeliveries()
    for mid in range(1, RefusedDeliveries.KEPT + 2):
        refused.refused(mid, "garage", "set_phase", b"{broken")
    assert not refused.again(1, True, "garage", "set_phase", b"{broken")  # the oldest went
    assert refused.again(RefusedDeliveries.KEPT + 1, True, "garage", "set_phase", b"{broken")
    assert not refused.again(2, True, "garage", "set_phase", b"{other")  # not the same message


SITE_WRITE_TOPIC = "goe2mqtt/site/house/write/set"  # bridge/site_runner.py: never published


def test_a_users_command_with_a_site_id_is_still_a_users_after_a_crash(tmp_path: Path) -> None:
    """Found in review: recovery told a site's write by its id, which the user chooses.
    A user's set whose id starts with "site:", journaled before a crash, was refused at
    the restart as the site's stale write ("not run: a site's write from before the
    restart"). What is the site's is what came on its own topic, marked in the journal."""
    journal = Journal(tmp_path / "j.journal")

    def a_desk(charger: FakeCharger) -> CommandDesk:
        desk = CommandDesk(journal, {"garage": charger}, topics=TOPICS, configured=["garage"],
                           answers_unknown=True, secrets=[],
                           essential=lambda message: message.topic == SITE_WRITE_TOPIC)  # fmt: skip
        charger.runner.sink = desk
        return desk

    before = a_desk(FakeCharger())
    site = [b'{"tcl": 16, "id": "site:house:1"}', b'{"frc": 1, "id": "site:house:2"}']
    users = [b'{"frc": 2, "id": "site:house:3"}', b'{"amp": 10, "id": "site:house:4"}']
    for mid, payload in enumerate(site, start=1):
        before.accept(
            "garage", "set", InboundMessage(SITE_WRITE_TOPIC, payload, retain=False, mid=mid)
        )
    for mid, payload in enumerate(users, start=10):
        user = InboundMessage("goe2mqtt/garage/cmd/set", payload, retain=False, mid=mid)
        before.accept("garage", "set", user)
    assert journal.count() == {QUEUED: 4}  # the crash: nothing ran
    charger = FakeCharger()
    after = a_desk(charger)
    after.recover(_NothingInFlight())
    ran = [json.loads(c.payload)["id"] for c in charger.submitted]
    assert ran == ["site:house:2", "site:house:3", "site:house:4"]
    (refused,) = _owed(after)
    assert refused["id"] == "site:house:1"


def test_a_journal_of_an_earlier_version_tells_the_sites_writes_by_their_id(
    desk: Any,
) -> None:
    commands, charger, journal = desk
    for payload in (b'{"tcl": 16, "id": "site:house:1"}', b'{"frc": 2, "id": "mine"}'):
        journal.record("garage", "set", payload, retained=False, received=time.time())
    journal._db.execute("UPDATE commands SET site = NULL")  # as an earlier version left it
    commands.recover(_NothingInFlight())
    assert [json.loads(c.payload)["id"] for c in charger.submitted] == ["mine"]
    assert [r["id"] for r in _owed(commands)] == ["site:house:1"]


SITE_LOWER_TOPIC = "goe2mqtt/site/house/write/lower"  # a site's write that only lowers


def test_a_sites_lowering_journaled_before_a_crash_runs_at_the_restart(tmp_path: Path) -> None:
    """Found by the adversary: a site's tcl write that lowered a charger for the fuse,
    journaled and not yet run at a kill -9, was refused at the restart as a stale write
    ("the site decides again"): the charger drew its old limit, maybe past the fuse,
    until the site's first decision on a fresh reading (or its meter's timeout). A
    lowering is safe on any reading: it runs first, like the pause; a raise does not."""
    journal = Journal(tmp_path / "j.journal")
    site_topics = (SITE_WRITE_TOPIC, SITE_LOWER_TOPIC)

    def a_desk(charger: FakeCharger) -> CommandDesk:
        desk = CommandDesk(journal, {"garage": charger}, topics=TOPICS, configured=["garage"],
                           answers_unknown=True, secrets=[],
                           essential=lambda message: message.topic in site_topics,
                           lowering=lambda message: message.topic == SITE_LOWER_TOPIC)  # fmt: skip
        charger.runner.sink = desk
        return desk

    before = a_desk(FakeCharger())
    before.accept("garage", "set", _message(b'{"frc": 2, "id": "mine"}', mid=1))
    for mid, (topic, payload) in enumerate(
        ((SITE_WRITE_TOPIC, b'{"tcl": 16, "id": "site:house:1"}'),  # a raise
         (SITE_LOWER_TOPIC, b'{"tcl": 8, "id": "site:house:2"}')), start=2):  # fmt: skip
        before.accept("garage", "set", InboundMessage(topic, payload, retain=False, mid=mid))
    assert journal.count() == {QUEUED: 3}  # the crash: nothing ran
    charger = FakeCharger()
    after = a_desk(charger)
    after.recover(_NothingInFlight())
    ran = [(json.loads(c.payload)["id"], c.first) for c in charger.submitted]
    assert ran == [("mine", False), ("site:house:2", True)]
    (refused,) = _owed(after)
    assert refused["id"] == "site:house:1"


def test_a_sites_lowering_a_crash_cut_short_runs_again_at_the_restart(tmp_path: Path) -> None:
    """A site's lowering (or pause) running when the bridge was killed - sent to the
    charger or not, nobody knows - was finished as interrupted: if it had not reached the
    charger, the charger drew its old limit until the site's first decision. A setpoint
    that only lowers the draw is safe twice: it runs again, first. A raise cut short, or a
    user's command, is interrupted as ever (the user decides whether to send it again)."""
    journal = Journal(tmp_path / "j.journal")
    rows = ((b'{"tcl": 8, "id": "site:house:1"}', True, True),
            (b'{"frc": 1, "id": "site:house:2"}', True, False),
            (b'{"tcl": 16, "id": "site:house:3"}', True, False),
            (b'{"amp": 10, "id": "mine"}', False, False))  # fmt: skip
    for payload, site, lowers in rows:
        seq = journal.record("garage", "set", payload, retained=False, received=time.time(),
                             site=site, lowers=lowers)  # fmt: skip
        assert seq is not None
        journal.start(seq, [{"tcl": 8}])  # the kill: each was running
    charger = FakeCharger()
    charger.runner.stats = SimpleNamespace(failed=0)  # type: ignore[attr-defined]
    desk = CommandDesk(journal, {"garage": charger}, topics=TOPICS, configured=["garage"],
                       answers_unknown=True, secrets=[])  # fmt: skip
    charger.runner.sink = desk
    desk.recover(_NothingInFlight())
    ran = [(json.loads(c.payload)["id"], c.first) for c in charger.submitted]
    assert ran == [("site:house:1", True), ("site:house:2", True)]
    assert sorted(r["id"] for r in _owed(desk)) == ["mine", "site:house:3"]  # interrupted
    assert charger.runner.stats.failed == 2  # type: ignore[attr-defined]
