"""A site's write is the fuse's protection: it does not wait behind the users' commands
queued for its charger, and their full queue does not refuse it (as the journal's full
disk does not: README "Sites", Writes)."""

from __future__ import annotations

import asyncio
import json
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from goe2mqtt.bridge.desk import CommandDesk
from goe2mqtt.commands.journal import Journal
from goe2mqtt.commands.outcomes import QueuedCommand, RepeatFilter
from goe2mqtt.commands.payloads import SetCall
from goe2mqtt.commands.runner import CommandRunner
from goe2mqtt.mqtt.session import InboundMessage
from goe2mqtt.mqtt.topics import Topics
from tests.unit.test_runner import FakeCharger

SITE_WRITES = "goe2mqtt/site/house/write"  # a site's own topic: never published


class Door:
    """A charger as the desk sees it: its runner (a real one)."""

    def __init__(self, runner: CommandRunner) -> None:
        self.runner = runner

    def offer_reading(self, service: str, payload: bytes, *, retained: bool) -> str | None:
        return None


class Finished:
    """The desk as the runner's sink, counting the results: all in, ``all`` is set."""

    def __init__(self, desk: CommandDesk, expected: int) -> None:
        self.desk, self.expected = desk, expected
        self.results: dict[str, dict[str, Any]] = {}
        self.all = asyncio.Event()

    @property
    def refusals(self) -> RepeatFilter:
        return self.desk.refusals

    def command_started(self, command: QueuedCommand, calls: Sequence[SetCall]) -> None:
        self.desk.command_started(command, calls)

    def command_finished(self, command: QueuedCommand, result: dict[str, Any]) -> None:
        self.results[result["id"]] = result
        self.desk.command_finished(command, result)
        if len(self.results) == self.expected:
            self.all.set()


async def test_a_sites_write_runs_before_the_users_commands_that_fill_the_queue(
    tmp_path: Path,
) -> None:
    charger = FakeCharger()
    await charger.refresh()
    journal = Journal(tmp_path / "j.journal")
    doors: dict[str, Door] = {}  # filled after, as the bridge fills its chargers
    desk = CommandDesk(
        journal, doors, topics=Topics("goe2mqtt"), configured=["garage"], answers_unknown=True,
        secrets=[], essential=lambda message: message.topic == SITE_WRITES,
    )  # fmt: skip
    sink = Finished(desk, 5)
    runner = CommandRunner(
        "garage", charger, charger.transport.set, sink=sink, max_command_age=60,
        confirm_delays=(0.0,), max_queued=3,
    )  # fmt: skip
    doors["garage"] = Door(runner)

    try:
        for n in range(3):  # a user's flood: the queue is full
            payload = json.dumps({"lbr": 100 + n, "id": f"user:{n}"}).encode()
            desk.accept("garage", "set", InboundMessage("goe2mqtt/garage/cmd/set", payload,
                                                        retain=False, mid=n + 1))  # fmt: skip
        for n, call in enumerate(({"tcl": 6}, {"frc": 1})):  # down, then a pause: in order
            payload = json.dumps({**call, "id": f"site:house:{n}"}).encode()
            desk.accept("garage", "set", InboundMessage(SITE_WRITES, payload, retain=False))
        assert sink.results == {}  # nothing refused
        serving = asyncio.create_task(runner.serve())
        try:
            await asyncio.wait_for(sink.all.wait(), 10)  # liveness only
        finally:
            runner.stop()
            await serving
    finally:
        journal.close()
    results = sink.results
    assert all(result["ok"] for result in results.values()), results
    sets = charger.transport.sets
    assert sets[:2] == [{"tcl": 6}, {"frc": 1}], sets  # the site's first, in its order
    assert [s["lbr"] for s in sets[2:]] == [100, 101, 102]  # then the users', in theirs
