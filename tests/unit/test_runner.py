"""One charger's command runner against a stand-in charger and transport: sets are
confirmed by what the charger shows, a value is resent once, an action never."""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import Collection, Mapping, Sequence
from typing import Any

from goe2mqtt.commands.outcomes import QueuedCommand, RepeatFilter
from goe2mqtt.commands.payloads import CommandError, SetCall
from goe2mqtt.commands.runner import CommandRunner
from goe2mqtt.goe.transport import TransientError
from goe2mqtt.sim.charger import SimulatedCharger
from goe2mqtt.util.values import JsonValue


class FakeTransport:
    """A simulated charger behind a transport that can lose answers."""

    def __init__(self) -> None:
        self.charger = SimulatedCharger("012345")
        self.sets: list[dict[str, JsonValue]] = []
        self.lose_answers = 0  # this many sets reach the charger, their answers do not

    async def status(self, keys: Collection[str]) -> dict[str, Any]:
        return self.charger.status(list(keys) or None)

    async def set(self, values: Mapping[str, JsonValue]) -> dict[str, Any]:
        self.sets.append(dict(values))
        self.charger.apply_set({k: _encoded(v) for k, v in values.items()})
        if self.lose_answers:
            self.lose_answers -= 1
            raise TransientError("timed out")
        return {key: True for key in values}


def _encoded(value: JsonValue) -> str:
    return json.dumps(value)  # how set() puts each value on the wire


class FakeCharger:
    """The CommandTarget: what the runner needs of a Charger, nothing more."""

    def __init__(self) -> None:
        self.name = "garage"
        self.transport = FakeTransport()
        self.status: dict[str, Any] = {}
        self.online = True
        self.offline_reason = ""
        self.lock = asyncio.Lock()
        self.last_error: tuple[float, str] | None = None
        self.polled = True
        self.stopping = False
        self.hold_off = 0.0
        self.pushed = 0  # polled: nothing is pushed

    async def refresh(self) -> bool:
        async with self.lock:
            return await self.read_back()

    async def read_back(self, since: int | None = None) -> bool:
        self.status = await self.transport.status(())
        return True

    def poll_soon(self, delay: float = 0.0) -> None:
        pass


class Sink:
    def __init__(self, *, journal_full: bool = False) -> None:
        self.refusals = RepeatFilter()
        self.started: list[list[SetCall]] = []
        self.journal_full = journal_full

    def command_started(self, command: QueuedCommand, calls: Sequence[SetCall]) -> None:
        if self.journal_full:
            raise CommandError("not run: the journal cannot store it (disk full)")
        self.started.append(list(calls))

    def command_finished(self, command: QueuedCommand, result: dict[str, Any]) -> None:
        pass


def _runner(charger: FakeCharger, sink: Sink | None = None) -> CommandRunner:
    return CommandRunner(
        charger, sink=sink or Sink(), max_command_age=60, confirm_delays=(0.0,), max_queued=5
    )


def _command(service: str, payload: bytes) -> QueuedCommand:
    return QueuedCommand(1, "garage", service, payload, False, time.time())


async def test_a_set_is_confirmed_by_what_the_charger_shows() -> None:
    charger = FakeCharger()
    await charger.refresh()
    result = await _runner(charger).execute(_command("change_charging_power", b"10"))
    assert result == {"service": "change_charging_power", "ok": True, "applied": [{"amp": 10}]}
    assert charger.status["amp"] == 10


async def test_a_value_whose_answer_was_lost_is_sent_once_more() -> None:
    charger = FakeCharger()
    await charger.refresh()
    charger.transport.lose_answers = 1
    result = await _runner(charger).execute(_command("change_charging_power", b"12"))
    assert result["ok"] is True, result
    assert charger.transport.sets == [{"amp": 12}, {"amp": 12}]


async def test_an_action_whose_answer_was_lost_is_never_sent_again() -> None:
    charger = FakeCharger()
    await charger.refresh()
    charger.transport.lose_answers = 1
    result = await _runner(charger).execute(_command("restart", b""))
    assert charger.transport.sets == [{"rst": 1}]
    assert result["ok"] is False
    assert result["error"].startswith("outcome unknown: timed out")
    assert result["sent"] == [{"rst": 1}]


async def test_a_command_the_journal_cannot_keep_sends_nothing() -> None:
    charger = FakeCharger()
    await charger.refresh()
    result = await _runner(charger, Sink(journal_full=True)).execute(
        _command("change_charging_power", b"8")
    )
    assert result["ok"] is False
    assert result["error"] == "not run: the journal cannot store it (disk full)"
    assert charger.transport.sets == []


async def test_an_offline_charger_refuses_with_its_reason() -> None:
    charger = FakeCharger()
    charger.online, charger.offline_reason = False, "answers as serial 067890"
    result = await _runner(charger).execute(_command("stop_charging", b""))
    assert result["error"] == "charger offline: answers as serial 067890"
    assert charger.transport.sets == []
