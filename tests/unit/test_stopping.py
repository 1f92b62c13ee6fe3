"""One deadline for the whole stop (bridge/stopping, bridge/wind_down), on a fake clock:
each stage takes from what is left, the later ones keep their floor, a session that
never said online is not waited for, and a task that swallows every cancel costs its share
only."""

from __future__ import annotations

import asyncio
import re
import threading
from pathlib import Path
from typing import Any

import pytest
import structlog.testing
import yaml

from goe2mqtt.bridge.fleet import stop_pollers
from goe2mqtt.bridge.stopping import (
    BACKSTOP_AFTER,
    COMMAND_GRACE,
    COMMANDS,
    EXIT,
    GOODBYE_SHARE,
    MQTT,
    POLLERS,
    RESULTS,
    STAGES,
    STOP_WITHIN,
    StopBudget,
    arm_backstop,
)
from goe2mqtt.bridge.wind_down import RunTasks, wind_down
from goe2mqtt.mqtt.topics import Topics

WAIT = 10.0  # liveness only


class FakeClock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def test_the_deadline_is_well_below_the_grace_of_docker_and_kubernetes() -> None:
    assert STOP_WITHIN <= 25.0  # 30 s: stop_grace_period, terminationGracePeriodSeconds
    assert sum(stage.floor for stage in STAGES) < STOP_WITHIN / 2
    assert [stage.name for stage in STAGES][:3] == ["pollers", "commands", "results"]


def test_a_running_command_keeps_its_whole_grace_when_the_rest_stops_quickly() -> None:
    clock = FakeClock()
    budget = StopBudget(clock=clock)
    assert budget.share(POLLERS) == POLLERS.at_most
    clock.now += 0.5  # the poll loops ended
    budget.done(POLLERS)
    assert budget.share(COMMANDS) == COMMAND_GRACE


def test_each_stage_takes_from_what_is_left_and_keeps_the_floors_of_those_after_it() -> None:
    clock = FakeClock()
    budget = StopBudget(20.0, clock=clock)
    clock.now += 8.0  # a fleet's sockets took long
    budget.done(POLLERS)
    later = sum(stage.floor for stage in STAGES[STAGES.index(COMMANDS) + 1 :])
    assert budget.share(COMMANDS) == pytest.approx(12.0 - later)
    clock.now += budget.share(COMMANDS)  # the command used all it was given
    budget.done(COMMANDS)
    assert budget.share(RESULTS) == pytest.approx(RESULTS.floor)  # squeezed to its floor
    assert budget.taken == {"pollers": 8.0, "commands": pytest.approx(12.0 - later)}


def test_stages_that_take_all_they_are_given_end_within_the_deadline() -> None:
    for within in (STOP_WITHIN, 12.0, 5.0):
        clock = FakeClock()
        budget = StopBudget(within, clock=clock)
        for stage in STAGES:
            clock.now += budget.share(stage)
            budget.done(stage)
        assert budget.elapsed() <= within
        assert set(budget.taken) == {stage.name for stage in STAGES}


def test_a_deadline_already_past_gives_nothing_more() -> None:
    clock = FakeClock()
    budget = StopBudget(20.0, clock=clock)
    clock.now += 25.0
    assert budget.left() == 0.0
    assert all(budget.share(stage) == 0.0 for stage in STAGES)
    assert budget.share(MQTT, 1.0) == 0.0


async def test_a_task_that_swallows_every_cancel_costs_its_share_only() -> None:
    relent = asyncio.Event()

    async def stubborn() -> None:
        while not relent.is_set():
            try:
                await asyncio.sleep(3600)
            except asyncio.CancelledError:
                continue  # as a library that drops a cancel would

    task = asyncio.create_task(stubborn())
    await asyncio.sleep(0)
    async with asyncio.timeout(WAIT):  # liveness: before, it was cancelled for ever
        stuck = await stop_pollers((), [task], within=0.2)
    assert stuck == {task}
    assert not task.done()  # left to the loop's end, as a stop leaves it
    relent.set()
    task.cancel()
    await asyncio.wait({task}, timeout=WAIT)


class Recorder:
    """What the stop did, in order."""

    def __init__(self) -> None:
        self.calls: list[tuple[str, Any]] = []


class FakeResults:
    def __init__(self, seen: Recorder) -> None:
        self.seen = seen

    async def flush(self, sender: Any, within: float) -> None:
        self.seen.calls.append(("flush", within))


class FakeDesk:
    def __init__(self, seen: Recorder) -> None:
        self.results = FakeResults(seen)


class FakeLedgerOut:
    def __init__(self, seen: Recorder) -> None:
        self.seen = seen

    def finish(self) -> None:
        self.seen.calls.append(("ledger", None))


class FakeMqtt:
    def __init__(self, seen: Recorder, *, said_online: bool) -> None:
        self.seen = seen
        self.owes_goodbye = said_online

    def stop(self, final: Any, within: float) -> None:
        self.seen.calls.append(("mqtt_stop", within))


async def forever() -> None:
    await asyncio.Event().wait()


async def _wind_down(
    budget: StopBudget, seen: Recorder, *, said_online: bool, command: asyncio.Task[None]
) -> tuple[int, asyncio.Task[None]]:
    mqtt_task = asyncio.create_task(forever())  # a session reconnecting to a dead broker
    tasks = RunTasks(mqtt_task, [], [command], [], set())
    async with asyncio.timeout(WAIT):
        stuck = await wind_down(
            budget, tasks, {}, desk=FakeDesk(seen), derived_keys=None,  # type: ignore[arg-type]
            ledger_out=FakeLedgerOut(seen), mqtt=FakeMqtt(seen, said_online=said_online),  # type: ignore[arg-type]
            topics=Topics("goe"),
        )  # fmt: skip
    return stuck, mqtt_task


async def test_a_session_never_online_is_not_waited_for_and_durable_things_come_first() -> None:
    seen = Recorder()
    command = asyncio.create_task(forever())  # a command that would run past any grace
    clock = FakeClock()
    budget = StopBudget(20.0, clock=clock)
    clock.now += 20.0 - sum(s.floor for s in STAGES[STAGES.index(COMMANDS) :])  # all but floors
    stuck, mqtt_task = await _wind_down(budget, seen, said_online=False, command=command)
    assert stuck == 0
    assert command.cancelled()  # cut off: its journal entry says started (outcome unknown)
    assert mqtt_task.cancelled()  # not waited for: the last will says offline
    assert [name for name, _ in seen.calls] == ["flush", "ledger", "mqtt_stop"]
    assert dict(seen.calls)["mqtt_stop"] == 0.0
    assert dict(seen.calls)["flush"] == pytest.approx(RESULTS.floor)


async def test_a_session_that_said_online_gets_what_is_left_for_its_goodbye() -> None:
    seen = Recorder()
    command = asyncio.create_task(asyncio.sleep(0))  # ends at once
    clock = FakeClock()
    budget = StopBudget(20.0, clock=clock)
    clock.now += 20.0 - 3.0  # 3 s left: the goodbye gets them less the exit's floor
    stuck, mqtt_task = await _wind_down(budget, seen, said_online=True, command=command)
    assert stuck == 0
    # The goodbye's share of what is left, the exit's floor kept; past it, cancelled.
    assert dict(seen.calls)["mqtt_stop"] == pytest.approx((3.0 - EXIT.floor) * GOODBYE_SHARE)
    assert mqtt_task.cancelled()
    assert [name for name, _ in seen.calls] == ["flush", "ledger", "mqtt_stop"]


def test_the_backstop_ends_a_stop_that_a_task_holds_past_the_deadline() -> None:
    ended: list[int] = []
    called = threading.Event()

    def end(code: int) -> None:
        ended.append(code)
        called.set()

    assert BACKSTOP_AFTER < 30  # before Docker's and Kubernetes' SIGKILL
    timer = arm_backstop(0.01, end)
    assert called.wait(WAIT)  # liveness only
    assert ended == [1]
    assert timer.daemon  # never what keeps a process alive


def test_a_backstop_not_due_does_nothing() -> None:
    ended: list[int] = []
    timer = arm_backstop(3600, ended.append)
    timer.cancel()
    timer.join(WAIT)
    assert ended == []


def test_every_shipped_deployment_waits_longer_than_the_stop_and_its_backstop() -> None:
    root = Path(__file__).resolve().parents[2]
    compose = yaml.safe_load((root / "compose.yaml").read_text())
    grace = compose["services"]["goe2mqtt"]["stop_grace_period"]
    assert grace.endswith("s")
    assert float(grace[:-1]) > BACKSTOP_AFTER
    statefulset = yaml.safe_load((root / "deploy/kubernetes/statefulset.yaml").read_text())
    assert statefulset["spec"]["template"]["spec"]["terminationGracePeriodSeconds"] > BACKSTOP_AFTER
    unit = (root / "contrib/goe2mqtt.service").read_text()
    [timeout] = re.findall(r"^TimeoutStopSec=(\d+)$", unit, re.MULTILINE)
    assert float(timeout) > BACKSTOP_AFTER


def test_a_backstop_says_where_the_loop_and_its_tasks_were_stuck() -> None:
    """An overrun seen in CI once (the look for another bridge, SIGTERM, exit 1 after 25 s)
    could not be traced: its line said only that the stop overran."""
    loop = asyncio.new_event_loop()
    blocked = threading.Event()
    called = threading.Event()

    async def waits_on_the_broker_forever() -> None:
        await asyncio.Event().wait()

    def holds_the_loop() -> None:
        arm_backstop(0.01, end, loop)  # armed here: it cannot fire before the loop is held
        blocked.wait(WAIT)  # liveness only: released once the backstop has spoken

    def end(code: int) -> None:
        called.set()
        blocked.set()

    def run() -> None:
        asyncio.set_event_loop(loop)
        task = loop.create_task(waits_on_the_broker_forever(), name="preflight")
        loop.call_soon(holds_the_loop)
        loop.run_until_complete(asyncio.sleep(0))
        loop.run_until_complete(asyncio.sleep(0))
        task.cancel()
        loop.run_until_complete(asyncio.gather(task, return_exceptions=True))

    with structlog.testing.capture_logs() as logs:
        worker = threading.Thread(target=run)
        worker.start()
        assert called.wait(WAIT)  # liveness only
        worker.join(WAIT)
    loop.close()
    (overran,) = [e for e in logs if e["event"] == "stop_overran"]
    stuck = overran["stuck"]
    assert any(line.startswith("thread ") and "holds_the_loop" in line for line in stuck)
    assert any(
        line.startswith("task preflight ") and "waits_on_the_broker_forever" in line
        for line in stuck
    )
