"""The command desk: every delivered command, from the journal to its result on the broker.

A command is journaled before the broker gets its PUBACK, routed to its charger's
queue (or answered here when no charger of ours takes it), and its result stays in
the journal until the broker acknowledged it. After a restart the desk picks up
what the journal holds: owed results, interrupted commands, queued ones.
"""

from __future__ import annotations

import asyncio
import dataclasses
import time
from collections import deque
from collections.abc import Callable, Iterable, Mapping, Sequence
from typing import Any, Protocol

import structlog

from goe2mqtt.charger.loop import Charger
from goe2mqtt.charger.pv_feed import INPUT_SERVICES
from goe2mqtt.commands.journal import (
    DONE,
    MAX_STORED_PAYLOAD,
    QUEUED,
    RUNNING,
    Entry,
    Journal,
    JournalWriteFailed,
)
from goe2mqtt.commands.outcomes import (
    CommandStats,
    QueuedCommand,
    RepeatFilter,
    interrupted,
    rejection,
)
from goe2mqtt.commands.services import MAX_PAYLOAD_BYTES, CommandError, SetCall, result_json
from goe2mqtt.mqtt.session import InboundMessage, PublishRefused
from goe2mqtt.mqtt.topics import Topics
from goe2mqtt.util.aio import wait_until_set
from goe2mqtt.util.logs import SecretRedactor

log = structlog.get_logger()

# A good PV reading was taken: a measurement, with no journal row and no result.
_READING_TAKEN = "reading taken"

RESULT_FLUSH = 5.0  # on stop, results may take this long to reach the broker
JOURNAL_KEEP = 86_400.0  # finished commands are remembered a day (late redeliveries)


class ResultChannel(Protocol):
    @property
    def connected(self) -> bool: ...

    async def publish(self, topic: str, payload: str | bytes, *, qos: int = 1) -> bool:
        """True once the broker has it; False if not (yet); PublishRefused if never."""


class CommandDesk:
    def __init__(
        self,
        journal: Journal,
        chargers: Mapping[str, Charger],
        *,
        topics: Topics,
        configured: Iterable[str],
        answers_unknown: bool,
        secrets: Iterable[str],
        on_health_change: Callable[[], None] = lambda: None,
        guard: Callable[[str, str, InboundMessage], str | None] | None = None,
    ) -> None:
        self.journal = journal
        self._chargers = chargers  # filled by the bridge; ours to route to
        self._topics = topics
        self._configured = frozenset(configured)
        # With shards, one answer per command for an unknown charger: shard 0 gives it.
        self._answers_unknown = answers_unknown
        self._redactor = SecretRedactor(secrets)
        self.unrouted = CommandStats()  # commands for chargers we do not have
        self.refusals = RepeatFilter()  # a sender refused again and again: logged once a minute
        # Results not yet acknowledged by the broker: (journal seq, topic, payload);
        # seq None for a command the journal could not store.
        self._results: deque[tuple[int | None, str, str]] = deque()
        self.results_refused = 0
        self._journal_error: str | None = None
        self._journal_failures = 0
        self._on_health_change = on_health_change
        self._guard = guard  # a refusal owed to someone else (a site managing the current)
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
        try:
            self.journal.prune(time.time() - JOURNAL_KEEP)
        except JournalWriteFailed as exc:
            self._journal_failed(exc)

    def session_lost(self) -> None:
        """The broker kept no session for us: forget the packet ids of earlier sessions,
        so a new delivery that happens to reuse one is never taken for a redelivery."""
        try:
            self.journal.forget_packet_ids()
        except JournalWriteFailed as exc:
            self._journal_failed(exc)

    def accept(self, charger: str, service: str, message: InboundMessage) -> None:
        """Journal a delivered command (called before its PUBACK) and route it.

        Never raises: whatever goes wrong, the message is answered once and the broker
        gets its PUBACK. A raise here would leave the message unacknowledged, and the
        broker would deliver it again and again (a poison message).
        """
        if charger not in self._chargers:
            if charger in self._configured:
                return  # another shard's charger: that instance answers
            if not self._answers_unknown:
                return
        if message.retain and not message.payload:
            # Someone cleared a retained command (mosquitto_pub -r -n): not a command.
            log.info("retained_command_cleared", charger=charger, service=service)
            return
        try:
            refusal = self._screen(charger, service, message)
        except Exception as exc:  # a bug must cost one answer, never the bridge
            log.exception("command_not_understood", charger=charger, service=service)
            refusal = f"payload could not be handled ({type(exc).__name__}): {exc}"[:200]
        if refusal is _READING_TAKEN:
            return
        command = QueuedCommand(
            None, charger, service, message.payload[:MAX_STORED_PAYLOAD], message.retain,
            time.time(),
        )  # fmt: skip
        try:
            seq = self.journal.record(
                charger,
                service,
                command.payload,
                retained=command.retained,
                received=command.received,
                mid=message.mid,
                dup=message.dup,
            )
        except JournalWriteFailed as exc:
            self._journal_failed(exc)
            refusal = refusal or (
                f"not run: the journal cannot store it ({self.journal_error}); "
                "commands run again once it can"
            )
        else:
            self._journal_ok()
            if seq is None:
                log.info("command_redelivered", charger=charger, service=service,
                         action="ignored")  # fmt: skip
                return
            command = dataclasses.replace(command, seq=seq)
        if refusal is not None:
            self._answer(command, rejection(command, refusal, self.refusals))
        else:
            self.route(command)

    def _screen(self, charger: str, service: str, message: InboundMessage) -> str | None:
        """What can be told before anything is stored: a refusal, _READING_TAKEN for a
        good PV reading (a measurement: no journal, no result), or None to run it."""
        size = len(message.payload)
        if size > MAX_PAYLOAD_BYTES:
            return f"payload of {size} bytes is larger than {MAX_PAYLOAD_BYTES} bytes"
        refusal = self._guard(charger, service, message) if self._guard is not None else None
        if refusal is not None:
            return refusal
        if service not in INPUT_SERVICES:
            return None
        bridge = self._chargers.get(charger)
        if bridge is None:
            return f"unknown charger {charger!r}"
        refusal = bridge.offer_reading(service, message.payload, retained=message.retain)
        return _READING_TAKEN if refusal is None else refusal

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
        self.command_finished(command, rejection(command, reason, self.refusals))

    # --- CommandSink: what the chargers report -----------------------------------------

    def command_started(self, command: QueuedCommand, calls: Sequence[SetCall]) -> None:
        """Journal that a command goes to the charger; CommandError if that cannot be
        stored: a set the journal does not know of could be sent again after a crash."""
        if command.seq is None:
            raise CommandError("not run: it is not in the journal")
        try:
            self.journal.start(command.seq, list(calls))
        except JournalWriteFailed as exc:
            self._journal_failed(exc)
            raise CommandError(
                f"not run: the journal cannot store it ({self.journal_error})"
            ) from None
        self._journal_ok()

    def command_finished(self, command: QueuedCommand, result: dict[str, Any]) -> None:
        self._answer(command, result)

    def _answer(self, command: QueuedCommand, result: dict[str, Any]) -> None:
        # The cloud may echo a token in an error text: results are redacted like logs.
        safe = self._redactor.scrub(result)
        if command.seq is not None:
            try:
                self.journal.finish(command.seq, safe)
            except JournalWriteFailed as exc:
                self._journal_failed(exc)  # the result still goes out, from memory
            else:
                self._journal_ok()
        self._queue_result(command.seq, command.charger, safe)

    # --- the journal's health --------------------------------------------------------

    @property
    def journal_error(self) -> str | None:
        """Why the journal cannot write now (None while it can)."""
        return self._journal_error

    def journal_info(self) -> dict[str, Any]:
        return {
            "ok": self._journal_error is None,
            "error": self._journal_error,
            "failed_writes": self._journal_failures,
        }

    def _journal_failed(self, exc: JournalWriteFailed) -> None:
        self._journal_failures += 1
        if self._journal_error is None:
            log.error(
                "journal_write_failed",
                file=str(self.journal.path),
                reason=str(exc),
                effect="commands are refused until the journal can write again;"
                " polling and publishing go on",
            )
            self._journal_error = str(exc)
            self._on_health_change()

    def _journal_ok(self) -> None:
        if self._journal_error is not None:
            log.warning("journal_recovered", file=str(self.journal.path),
                        failed_writes=self._journal_failures)  # fmt: skip
            self._journal_error = None
            self._on_health_change()

    # --- results to the broker ------------------------------------------------------

    def _queue_result(self, seq: int | None, charger: str, result: dict[str, Any]) -> None:
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
            try:
                published = await channel.publish(topic, payload)
            except PublishRefused:
                # The broker will not take it (an ACL): resending would block every
                # result behind it. The journal keeps it owed for the next start.
                self._results.popleft()
                self.results_refused += 1
                continue
            if published:
                self._results.popleft()
                if seq is not None:
                    try:
                        self.journal.published(seq)
                    except JournalWriteFailed as exc:
                        # Sent again after a restart at worst: a result twice, not lost.
                        self._journal_failed(exc)
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
    """A journaled command; its age so far is all the wall clock can tell (another run)."""
    waited = max(0.0, time.time() - entry.received)
    return QueuedCommand(
        entry.seq, entry.charger, entry.service, entry.payload, entry.retained, entry.received,
        received_at=time.monotonic() - waited,
    )  # fmt: skip
