"""One charger's command runner against a tiny stand-in view of its charger and a
transport (no sockets): sets are confirmed by what the charger shows, a value is resent
once, an action never; a failure is the runner's own, the charger is not written to."""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import Collection, Mapping, Sequence
from typing import Any

from goe2mqtt.commands.access import ChargerAccess
from goe2mqtt.commands.outcomes import QueuedCommand, RepeatFilter
from goe2mqtt.commands.payloads import CommandError, SetCall
from goe2mqtt.commands.runner import CommandRunner
from goe2mqtt.commands.services import parse_delivered
from goe2mqtt.goe.transport import TransientError
from goe2mqtt.sim.charger import SimulatedCharger
from goe2mqtt.util.values import JsonValue


class FakeTransport:
    """A simulated charger behind a transport that can lose answers."""

    def __init__(self) -> None:
        self.charger = SimulatedCharger("012345")
        self.sets: list[dict[str, JsonValue]] = []
        self.lose_answers = 0  # this many sets reach the charger, their answers do not
        self.drop_sets = False  # acknowledged, never applied (the cloud's 202)

    async def status(self, keys: Collection[str]) -> dict[str, Any]:
        return self.charger.status(list(keys) or None)

    async def set(self, values: Mapping[str, JsonValue]) -> dict[str, Any]:
        self.sets.append(dict(values))
        if self.drop_sets:
            return {key: True for key in values}
        self.charger.apply_set({k: _encoded(v) for k, v in values.items()})
        if self.lose_answers:
            self.lose_answers -= 1
            raise TransientError("timed out")
        return {key: True for key in values}


def _encoded(value: JsonValue) -> str:
    return json.dumps(value)  # how set() puts each value on the wire


class FakeCharger:
    """The runner's view of a charger (ChargerAccess), and nothing more: no last_error,
    no name, no transport - the runner has nothing of the charger's to write to."""

    def __init__(self) -> None:
        self.transport = FakeTransport()  # the test's, not the runner's view
        self.status: dict[str, Any] = {}
        self.offline: str | None = None
        self.lock = asyncio.Lock()
        self.polled = True
        self.hold_off = 0.0
        self.pushed = 0  # polled: nothing is pushed
        self.looks_asked: list[float] = []

    def unreachable(self) -> str | None:
        return self.offline

    async def refresh(self) -> bool:
        async with self.lock:
            return await self.read_back()

    async def read_back(self, since: int | None = None) -> bool:
        self.status = await self.transport.status(())
        return True

    def poll_soon(self, delay: float = 0.0) -> None:
        self.looks_asked.append(delay)


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
    view: ChargerAccess = charger  # what the runner is given: the view, nothing more
    return CommandRunner(
        "garage",
        view,
        charger.transport.set,
        sink=sink or Sink(),
        max_command_age=60,
        confirm_delays=(0.0,),
        max_queued=5,
    )


async def _run(runner: CommandRunner, service: str, payload: bytes) -> dict[str, Any]:
    """Run a command as the desk hands it over: parsed when it was accepted."""
    queued = QueuedCommand(1, "garage", service, payload, False, time.time())
    return await runner.execute(queued, parse_delivered(service, payload, retained=False))


async def test_a_set_is_confirmed_by_what_the_charger_shows() -> None:
    charger = FakeCharger()
    await charger.refresh()
    result = await _run(_runner(charger), "change_charging_power", b"10")
    assert result == {"service": "change_charging_power", "ok": True, "applied": [{"amp": 10}]}
    assert charger.status["amp"] == 10


async def test_a_value_whose_answer_was_lost_is_sent_once_more() -> None:
    charger = FakeCharger()
    await charger.refresh()
    charger.transport.lose_answers = 1
    result = await _run(_runner(charger), "change_charging_power", b"12")
    assert result["ok"] is True, result
    assert charger.transport.sets == [{"amp": 12}, {"amp": 12}]


async def test_an_action_whose_answer_was_lost_is_never_sent_again() -> None:
    charger = FakeCharger()
    await charger.refresh()
    charger.transport.lose_answers = 1
    result = await _run(_runner(charger), "restart", b"")
    assert charger.transport.sets == [{"rst": 1}]
    assert result["ok"] is False
    assert result["error"].startswith("outcome unknown: timed out")
    assert result["sent"] == [{"rst": 1}]


async def test_a_command_the_journal_cannot_keep_sends_nothing() -> None:
    charger = FakeCharger()
    await charger.refresh()
    result = await _run(_runner(charger, Sink(journal_full=True)), "change_charging_power", b"8")
    assert result["ok"] is False
    assert result["error"] == "not run: the journal cannot store it (disk full)"
    assert charger.transport.sets == []


async def test_an_offline_charger_refuses_with_its_reason() -> None:
    charger = FakeCharger()
    charger.offline = "answers as serial 067890"
    result = await _run(_runner(charger), "stop_charging", b"")
    assert result["error"] == "charger offline: answers as serial 067890"
    assert charger.transport.sets == []


async def test_a_failure_is_the_runners_and_leaves_the_charger_untouched() -> None:
    charger = FakeCharger()
    await charger.refresh()
    charger.transport.drop_sets = True
    before = dict(vars(charger))
    runner = _runner(charger)
    result = await _run(runner, "change_charging_power", b"10")
    assert result["error"] == "not confirmed", result
    at, what = runner.last_failure or (0.0, "")
    assert what == "change_charging_power failed: not confirmed"
    assert at > 0
    assert runner.stats.failed == 1
    # The runner wrote nothing of the charger's: only the status it read back changed,
    # and the look it asked for after the command.
    after = dict(vars(charger))
    assert set(after) == set(before)
    assert {k for k in after if after[k] is not before[k]} <= {"status"}
    assert charger.looks_asked == [1.5]


async def test_queued_commands_run_in_order_and_each_reports_once() -> None:
    charger = FakeCharger()
    await charger.refresh()
    finished: list[dict[str, Any]] = []
    both = asyncio.Event()

    class Recording(Sink):
        def command_finished(self, command: QueuedCommand, result: dict[str, Any]) -> None:
            finished.append(result)
            if len(finished) == 2:
                both.set()

    runner = _runner(charger, Recording())
    for amp in (b"8", b"9"):
        queued = QueuedCommand(None, "garage", "change_charging_power", amp, False, time.time())
        runner.submit(queued, parse_delivered(queued.service, amp, retained=False))
    serving = asyncio.create_task(runner.serve())
    try:
        await asyncio.wait_for(both.wait(), 10)  # bounded for liveness only
    finally:
        runner.stop()
        await serving
    assert [r["applied"] for r in finished] == [[{"amp": 8}], [{"amp": 9}]]
    assert charger.transport.sets == [{"amp": 8}, {"amp": 9}]


async def test_waiting_commands_of_a_charger_gone_offline_are_refused() -> None:
    charger = FakeCharger()
    finished: list[dict[str, Any]] = []

    class Recording(Sink):
        def command_finished(self, command: QueuedCommand, result: dict[str, Any]) -> None:
            finished.append(result)

    runner = _runner(charger, Recording())
    queued = QueuedCommand(None, "garage", "stop_charging", b"", False, time.time())
    runner.submit(queued, parse_delivered("stop_charging", b"", retained=False))
    runner.refuse_waiting("charger offline: timed out")
    charger.offline = "timed out"
    runner.submit(queued, parse_delivered("stop_charging", b"", retained=False))
    assert [r["error"] for r in finished] == ["charger offline: timed out"] * 2
    assert runner.queued == 0
    assert runner.stats.rejected == 2
    assert charger.transport.sets == []
