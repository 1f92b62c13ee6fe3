"""The command desk with stand-ins for chargers and the broker: what it journals, what
it answers, and that nothing it is handed can make it raise."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from goe2mqtt.bridge.desk import CommandDesk
from goe2mqtt.commands.journal import DONE, QUEUED, Journal, JournalWriteFailed
from goe2mqtt.commands.outcomes import QueuedCommand
from goe2mqtt.mqtt.session import InboundMessage
from goe2mqtt.mqtt.topics import Topics

TOPICS = Topics("goe2mqtt")


class FakeCharger:
    """Takes commands and PV readings as a Charger does; can be told to blow up."""

    def __init__(self) -> None:
        self.submitted: list[QueuedCommand] = []
        self.readings: list[bytes] = []
        self.explode = False

    def submit(self, command: QueuedCommand) -> None:
        self.submitted.append(command)

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
        {"garage": charger},  # type: ignore[dict-item]
        topics=TOPICS,
        configured=["garage"],
        answers_unknown=True,
        secrets=[],
    )
    return desk, charger, journal


def _message(payload: bytes, *, retain: bool = False, mid: int | None = 1) -> InboundMessage:
    return InboundMessage(topic="x", payload=payload, retain=retain, mid=mid)


def _owed(desk: CommandDesk) -> list[dict[str, Any]]:
    return [json.loads(payload) for payload in desk.owed()]


def test_a_command_is_journaled_and_routed(desk: Any) -> None:
    commands, charger, journal = desk
    commands.accept("garage", "stop_charging", _message(b"{}"))
    assert [c.service for c in charger.submitted] == ["stop_charging"]
    assert journal.count() == {QUEUED: 1}


def test_an_oversized_payload_is_refused_and_journaled_in_part(desk: Any) -> None:
    commands, charger, journal = desk
    commands.accept("garage", "stop_charging", _message(b"x" * 100_000))
    assert charger.submitted == []
    assert _owed(commands)[0]["error"] == "payload of 100000 bytes is larger than 4096 bytes"
    (entry,) = journal.entries(DONE)
    assert len(entry.payload) == 4096


def test_clearing_a_retained_command_is_ignored(desk: Any) -> None:
    commands, charger, journal = desk
    commands.accept("garage", "stop_charging", _message(b"", retain=True))
    assert charger.submitted == []
    assert commands.owed() == []
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


def test_a_command_for_an_unknown_charger_is_answered(desk: Any) -> None:
    commands, _, _ = desk
    commands.accept("nosuch", "stop_charging", _message(b"{}"))
    assert _owed(commands)[0]["error"] == "unknown charger 'nosuch'"
