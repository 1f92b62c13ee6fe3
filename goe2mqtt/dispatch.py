"""The command desk: every delivered command, from the journal to its result on the broker.

A command is journaled before the broker gets its PUBACK, routed to its charger's
queue (or answered here when no charger of ours takes it), and its result stays in
the journal until the broker acknowledged it. After a restart the desk picks up
what the journal holds: owed results, interrupted commands, queued ones.
"""

from __future__ import annotations

import asyncio
import time
from collections import deque
from collections.abc import Iterable, Mapping, Sequence
from typing import Any, Protocol

import structlog

from goe2mqtt.aio import wait_until_set
from goe2mqtt.charger import ChargerBridge
from goe2mqtt.commands import SetCall, result_json
from goe2mqtt.discovery import Topics
from goe2mqtt.journal import DONE, QUEUED, RUNNING, Entry, Journal
from goe2mqtt.logs import SecretRedactor
from goe2mqtt.mqtt import InboundMessage
from goe2mqtt.outcomes import (
    CommandStats,
    QueuedCommand,
    RepeatFilter,
    interrupted,
    rejection,
)
from goe2mqtt.pv_feed import INPUT_SERVICES

log = structlog.get_logger()

RESULT_FLUSH = 5.0  # on stop, results may take this long to reach the broker
JOURNAL_KEEP = 86_400.0  # finished commands are remembered a day (late redeliveries)


class ResultChannel(Protocol):
    @property
    def connected(self) -> bool: ...

    async def publish(self, topic: str, payload: str | bytes, *, qos: int = 1) -> bool: ...


class CommandDesk:
    def __init__(
        self,
        journal: Journal,
        chargers: Mapping[str, ChargerBridge],
        *,
        topics: Topics,
        configured: Iterable[str],
        answers_unknown: bool,
        secrets: Iterable[str],
    ) -> None:
        self.journal = journal
        self._chargers = chargers  # filled by the bridge; ours to route to
        self._topics = topics
        self._configured = frozenset(configured)
        # With shards, one answer per command for an unknown charger: shard 0 gives it.
        self._answers_unknown = answers_unknown
        self._redactor = SecretRedactor(secrets)
        self.unrouted = CommandStats()  # commands for chargers we do not have
        self._repeats = RepeatFilter()  # PV readings refused again and again
        # Results not yet acknowledged by the broker: (journal seq, topic, payload).
        self._results: deque[tuple[int, str, str]] = deque()
        self._added = asyncio.Event()
        self._drained = asyncio.Event()
        self._reconnected = asyncio.Event()

    @property
    def results_pending(self) -> int:
        return len(self._results)

    def owed(self) -> list[str]:
        """The results the broker has not acknowledged yet, as JSON, oldest first."""
        return [payload for _, _, payload in self._results]

    def recover(self) -> None:
        """Pick up what the last run left in the journal."""
        self.prune()
        for entry in self.journal.entries(DONE):
            assert entry.result is not None
            self._queue_result(entry.seq, entry.charger, entry.result)
        for entry in self.journal.entries(RUNNING):
            command = _command_of(entry)
            log.warning("command_interrupted", charger=entry.charger, service=entry.service)
            self.command_finished(command, interrupted(command, entry.sent))
        queued = self.journal.entries(QUEUED)
        for entry in queued:
            self.route(_command_of(entry))
        if queued:
            log.info("commands_resumed", count=len(queued))

    def prune(self) -> None:
        self.journal.prune(time.time() - JOURNAL_KEEP)

    def accept(self, charger: str, service: str, message: InboundMessage) -> None:
        """Journal a delivered command (called before its PUBACK) and route it."""
        if charger not in self._chargers:
            if charger in self._configured:
                return  # another shard's charger: that instance answers
            if not self._answers_unknown:
                return
        refusal, loud = None, True
        if service in INPUT_SERVICES:
            # A PV reading: a measurement, not a command - no journal, no result when good.
            # A bad one is journaled and answered like a refused command.
            bridge = self._chargers.get(charger)
            if bridge is None:
                refusal = f"unknown charger {charger!r}"
            else:
                refusal = bridge.offer_reading(service, message.payload, retained=message.retain)
            if refusal is None:
                return
            loud = self._repeats.first(charger, service, refusal)
        received = time.time()
        seq = self.journal.record(
            charger,
            service,
            message.payload,
            retained=message.retain,
            received=received,
            mid=message.mid,
            dup=message.dup,
        )
        if seq is None:
            log.info("command_redelivered", charger=charger, service=service, action="ignored")
            return
        command = QueuedCommand(seq, charger, service, message.payload, message.retain, received)
        if refusal is not None:
            self.command_finished(command, rejection(command, refusal, loud=loud))
        else:
            self.route(command)

    def route(self, command: QueuedCommand) -> None:
        bridge = self._chargers.get(command.charger)
        if bridge is not None:
            bridge.submit(command)
            return
        self.unrouted.rejected += 1
        if command.charger in self._configured:
            reason = f"charger {command.charger!r} is served by another shard now: send it again"
        else:
            reason = f"unknown charger {command.charger!r}"
        self.command_finished(command, rejection(command, reason))

    # --- CommandSink: what the chargers report -----------------------------------------

    def command_started(self, command: QueuedCommand, calls: Sequence[SetCall]) -> None:
        self.journal.start(command.seq, list(calls))

    def command_finished(self, command: QueuedCommand, result: dict[str, Any]) -> None:
        # The cloud may echo a token in an error text: results are redacted like logs.
        safe = self._redactor.scrub(result)
        self.journal.finish(command.seq, safe)
        self._queue_result(command.seq, command.charger, safe)

    # --- results to the broker ------------------------------------------------------

    def _queue_result(self, seq: int, charger: str, result: dict[str, Any]) -> None:
        self._results.append((seq, self._topics.result(charger), result_json(result)))
        self._drained.clear()
        self._added.set()

    def connection_changed(self, connected: bool) -> None:
        if connected:
            self._reconnected.set()

    async def publish_forever(self, channel: ResultChannel) -> None:
        """Publish results in order; each leaves the journal once the broker has it."""
        while True:
            if not self._results:
                self._drained.set()
                self._added.clear()
                await self._added.wait()
                continue
            seq, topic, payload = self._results[0]
            if await channel.publish(topic, payload):
                self.journal.published(seq)
                self._results.popleft()
            else:
                # Not connected, or the broker did not acknowledge: wait for a connection.
                self._reconnected.clear()
                if not channel.connected:
                    await self._reconnected.wait()
                else:
                    await wait_until_set(self._reconnected, 1.0)

    async def flush(self, channel: ResultChannel) -> None:
        """On stop: give the results still owed a moment to go out (the journal keeps
        the rest for the next start)."""
        if self._results and channel.connected:
            await wait_until_set(self._drained, RESULT_FLUSH)


def _command_of(entry: Entry) -> QueuedCommand:
    return QueuedCommand(
        entry.seq, entry.charger, entry.service, entry.payload, entry.retained, entry.received
    )
