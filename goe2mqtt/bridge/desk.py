"""The command desk: every delivered command, from its arrival to its result.

A command is parsed when it arrives: one that could never run (malformed, too large,
retained, for no charger of ours) is refused at once, with nothing stored and nothing
queued. One that parses is journaled before the broker gets its PUBACK and handed to
its charger's runner, and its result stays in the journal until the broker
acknowledged it (the results' way out: bridge.results). After a restart the desk picks
up what the journal holds: owed results, interrupted commands, queued ones.
"""

from __future__ import annotations

import dataclasses
import time
from collections import Counter
from collections.abc import Callable, Iterable, Mapping, Sequence
from typing import Any, Protocol

import structlog

from goe2mqtt.bridge.journal_health import JournalHealth
from goe2mqtt.bridge.journal_rows import (
    STALE_SITE_WRITE,
    command_of,
    lowering_write,
    lowers,
    site_write,
)
from goe2mqtt.bridge.results import ResultQueue, ResultSender
from goe2mqtt.charger.pv_feed import INPUT_SERVICES
from goe2mqtt.commands.journal import (
    MAX_STORED_PAYLOAD,
    QUEUED,
    RUNNING,
    Journal,
    JournalWriteFailed,
)
from goe2mqtt.commands.outcomes import (
    CommandStats,
    Durations,
    JournalWait,
    QueuedCommand,
    RefusedDeliveries,
    RepeatFilter,
    interrupted,
    outcome_of,
    rejection,
)
from goe2mqtt.commands.payloads import MAX_PAYLOAD_BYTES, CommandError, SetCall
from goe2mqtt.commands.services import SERVICES_BY_NAME, Command, parse_delivered
from goe2mqtt.mqtt.session import InboundMessage
from goe2mqtt.mqtt.topics import Topics
from goe2mqtt.util.logs import SecretRedactor

log = structlog.get_logger()

JOURNAL_KEEP = 86_400.0  # finished commands are remembered a day (late redeliveries)


class RunnerDoor(Protocol):
    """What the desk asks of a charger's runner (commands.runner.CommandRunner)."""

    stats: CommandStats  # its charger's commands by how they ended (bridge/info)

    def submit(self, queued: QueuedCommand, command: Command) -> None:
        """Queue a journaled, parsed command (or refuse it if it cannot wait)."""
        ...

    def refuse(self, command: QueuedCommand, reason: str) -> None:
        """Count and answer a command that could never run."""
        ...

    def full(self) -> str | None:
        """Why a command now would be refused as "queue full" (None: it may wait)."""
        ...


class ChargerDoor(Protocol):
    """What the desk needs of a charger (charger.loop.Charger is one): the runner its
    commands go to, and its PV feed's door for readings."""

    @property
    def runner(self) -> RunnerDoor: ...

    def offer_reading(self, service: str, payload: bytes, *, retained: bool) -> str | None:
        """Take a PV reading; the reason when it is refused."""
        ...


class CommandDesk:
    def __init__(
        self,
        journal: Journal,
        chargers: Mapping[str, ChargerDoor],
        *,
        topics: Topics,
        configured: Iterable[str],
        answers_unknown: bool,
        secrets: Iterable[str],
        on_health_change: Callable[[], None] = lambda: None,
        guard: Callable[[str, str, InboundMessage], str | None] | None = None,
        essential: Callable[[InboundMessage], bool] = lambda message: False,
        lowering: Callable[[InboundMessage], bool] = lambda message: False,
        site_write_dropped: Callable[[str, Mapping[str, Any]], None] = lambda charger, call: None,
    ) -> None:
        self.journal = journal
        self._chargers = chargers  # filled by the bridge; ours to route to
        self._configured = frozenset(configured)
        # With shards, one answer per command for an unknown charger: shard 0 gives it.
        self._answers_unknown = answers_unknown
        self._redactor = SecretRedactor(secrets)
        self.unrouted = CommandStats()  # commands for chargers we do not have
        self.refusals = RepeatFilter()  # a sender refused again and again: logged once a minute
        self._refused = RefusedDeliveries()  # in this broker session, never stored
        self._on_health_change = on_health_change
        self._health = JournalHealth(journal, lambda: self._on_health_change())
        self.results = ResultQueue(journal, topics, on_journal_failed=self._health.failed)
        self._health.owed = self.results  # what it writes once the journal can
        self._marked: set[int] = set()  # seqs whose rows say running (a set may be out)
        # (charger, service, outcome) -> commands so ended, and how long they took:
        # what /metrics shows. Commands for chargers we do not have count under "".
        self.outcomes: Counter[tuple[str, str, str]] = Counter()
        self.durations = Durations()
        self._guard = guard  # a refusal owed to someone else (a site managing the current)
        self._essential = essential  # a write that runs even when the journal cannot store it
        self._lowering = lowering  # a site's write that only lowers: runs after a restart
        # A site's write from before a restart, not run (the site decides again): its
        # site is told (a resume not run leaves the charger paused, and the site's own).
        self._site_write_dropped = site_write_dropped

    def recover(self, sender: ResultSender) -> None:
        """Pick up what the last run left in the journal (before the session connects)."""
        self.prune()
        self.results.resume(sender)
        for entry in self.journal.entries(RUNNING):
            command = command_of(entry)
            again = lowering_write(entry)
            if again is not None:  # sent or not: a lowering is safe twice, and lost unsafe
                log.warning("command_interrupted", charger=entry.charger,
                            service=entry.service, action="run again: lowers the draw")  # fmt: skip
                self.route(dataclasses.replace(command, first=True), again)
                continue
            log.warning("command_interrupted", charger=entry.charger, service=entry.service)
            self._marked.add(entry.seq)
            door = self._chargers.get(entry.charger)
            # A failure like any the charger did not confirm (bridge/info's "failed").
            (door.runner.stats if door is not None else self.unrouted).failed += 1
            self.command_finished(command, interrupted(command, entry.sent))
        queued = self.journal.entries(QUEUED)
        for entry in queued:
            command = command_of(entry)
            try:
                parsed = parse_delivered(entry.service, entry.payload, retained=entry.retained)
            except CommandError as exc:  # journaled by a version that parsed it otherwise
                self.command_finished(command, rejection(command, str(exc), self.refusals))
                continue
            site = site_write(entry, parsed)
            if not site:
                self.route(command, parsed)
            elif lowers(entry, parsed):  # a site's pause or lowering: first, as before
                self.route(dataclasses.replace(command, first=True), parsed)
            else:
                self._site_write_dropped(entry.charger, parsed.arguments)
                self.command_finished(command, rejection(command, STALE_SITE_WRITE, self.refusals))
        if queued:
            log.info("commands_resumed", count=len(queued))

    def prune(self) -> None:
        try:
            self.journal.prune(time.time() - JOURNAL_KEEP)
        except JournalWriteFailed as exc:
            self._health.failed(exc)

    def session_lost(self) -> None:
        """The broker kept no session for us: forget the packet ids of earlier sessions,
        so a new delivery that happens to reuse one is never taken for a redelivery."""
        self._refused.forget()
        try:
            self.journal.forget_packet_ids()
        except JournalWriteFailed as exc:
            self._health.failed(exc)

    def accept(self, charger: str, service: str, message: InboundMessage) -> None:
        """Parse a delivered command, journal it (called before its PUBACK) and hand it
        to its charger's runner; refuse it unstored if it could never run.

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
        payload = message.payload[:MAX_STORED_PAYLOAD]
        if self._refused.again(message.mid, message.dup, charger, service, payload):
            log.info("command_redelivered", charger=charger, service=service, action="ignored")
            return
        command = QueuedCommand(None, charger, service, payload, message.retain, time.time(),
                                first=self._essential(message))  # fmt: skip
        try:
            parsed = self._screen(charger, service, message)
        except Exception as exc:  # a bug must cost one answer, never the bridge
            log.exception("command_not_understood", charger=charger, service=service)
            parsed = f"payload could not be handled ({type(exc).__name__}): {exc}"[:200]
        if parsed is None:
            return  # a good PV reading: a measurement, with no journal row and no result
        if isinstance(parsed, str):
            self._refuse_unstored(command, parsed, message.mid)
            return
        try:
            seq = self.journal.record(
                charger,
                service,
                command.payload,
                retained=command.retained,
                received=command.received,
                mid=message.mid,
                dup=message.dup,
                site=command.first,
                lowers=command.first and self._lowering(message),
            )
        except JournalWriteFailed as exc:
            self._health.failed(exc)
            if self._essential(message):
                # A site's write (the fuse's protection): run from memory. Running it
                # twice after a crash is harmless, and it is not run again anyway.
                self.route(dataclasses.replace(command, unjournaled_ok=True), parsed)
                return
            reason = (
                f"not run: the journal cannot store it ({self.journal_error}); "
                "commands run again once it can"
            )
            self._answer(command, rejection(command, reason, self.refusals))
            return
        self._health.ok()
        if seq is None:
            log.info("command_redelivered", charger=charger, service=service, action="ignored")
            return
        self.route(dataclasses.replace(command, seq=seq), parsed)

    def _screen(self, charger: str, service: str, message: InboundMessage) -> Command | str | None:
        """What can be told before anything is stored: the parsed command to run, the
        reason it could never run, or None for a good PV reading (taken)."""
        size = len(message.payload)
        if size > MAX_PAYLOAD_BYTES:
            return f"payload of {size} bytes is larger than {MAX_PAYLOAD_BYTES} bytes"
        refusal = self._guard(charger, service, message) if self._guard is not None else None
        if refusal is not None:
            return refusal
        door = self._chargers.get(charger)
        if door is None:
            return self._unserved(charger)
        if service in INPUT_SERVICES:
            return door.offer_reading(service, message.payload, retained=message.retain)
        try:
            parsed = parse_delivered(service, message.payload, retained=message.retain)
        except CommandError as exc:
            return str(exc)
        # Refused unstored, before the journal: a flood of commands for a charger whose
        # queue is full cost a journal write and a result held until sent, each. Never a
        # site's write: a flood of users' commands must not keep the fuse's from running.
        return (None if self._essential(message) else door.runner.full()) or parsed

    def _unserved(self, charger: str) -> str:
        if charger in self._configured:
            return f"charger {charger!r} is served by another shard now: send it again"
        return f"unknown charger {charger!r}"

    def _refuse_unstored(self, command: QueuedCommand, reason: str, mid: int | None) -> None:
        """Refuse a command that could never run: no journal row (the result goes out
        from memory), counted with its charger's commands (or the unrouted ones; a PV
        reading is a measurement, not a command, and counts as neither)."""
        self._refused.refused(mid, command.charger, command.service, command.payload)
        door = self._chargers.get(command.charger)
        if door is not None and command.service not in INPUT_SERVICES:
            door.runner.refuse(command, reason)  # answered through command_finished
            return
        if door is None:
            self.unrouted.rejected += 1
        self._answer(command, rejection(command, reason, self.refusals))

    def route(self, command: QueuedCommand, parsed: Command) -> None:
        """Hand a journaled command to its charger's runner (refuse it if none is ours)."""
        door = self._chargers.get(command.charger)
        if door is not None:
            door.runner.submit(command, parsed)
            return
        self.unrouted.rejected += 1
        reason = self._unserved(command.charger)
        self.command_finished(command, rejection(command, reason, self.refusals))

    # --- CommandSink: what the chargers report -----------------------------------------

    def command_started(self, command: QueuedCommand, calls: Sequence[SetCall]) -> None:
        """Journal that a command goes to the charger; CommandError if it never can be,
        JournalWait while the journal cannot write: a set the journal does not know of
        could be sent again after a crash (a site's write runs anyway)."""
        if command.seq is None:
            if command.unjournaled_ok:
                return
            raise CommandError("not run: it is not in the journal")
        try:
            self.journal.start(command.seq, list(calls))
        except JournalWriteFailed as exc:
            self._health.failed(exc)
            if command.first:  # a site's write: the fuse does not wait for a disk
                return  # run from memory, as one the journal could not store at all
            # Journaled: it waits for the disk, never refused while its row says queued.
            raise JournalWait(f"journal cannot write: {self.journal_error}",
                              self._health.writable) from None  # fmt: skip
        self._marked.add(command.seq)
        self._health.ok()

    def command_finished(self, command: QueuedCommand, result: dict[str, Any]) -> None:
        self._answer(command, result)

    def _answer(self, command: QueuedCommand, result: dict[str, Any]) -> None:
        # The cloud may echo a token in an error text: results are redacted like logs.
        safe = self._redactor.scrub(result)
        # Names a sender made up are not labels: each would be a series for good.
        charger = command.charger if command.charger in self._chargers else ""
        known = command.service in SERVICES_BY_NAME or command.service in INPUT_SERVICES
        service = command.service if known else ""
        self.outcomes[(charger, service, outcome_of(safe))] += 1
        self.durations.observe(service, time.monotonic() - command.received_at)
        stored, hold = True, False
        if command.seq is not None:
            marked = command.seq in self._marked
            self._marked.discard(command.seq)
            try:
                self.journal.finish(command.seq, safe)
            except JournalWriteFailed as exc:
                stored = False  # its row is written once the journal can (write_owed)
                # Its row says queued (a refusal at its turn): a restart would run it,
                # so its sender hears of it only once the journal holds the refusal. One
                # that ran goes out now (a restart answers it again, never runs it).
                hold = not marked and not command.first
                self._health.failed(exc)
            else:
                self._health.ok()
        self.results.add(command.seq, command.charger, safe, stored=stored, hold=hold)

    # --- the journal's health (bridge.journal_health) --------------------------------

    @property
    def journal_error(self) -> str | None:
        """Why the journal cannot write now (None while it can)."""
        return self._health.error

    def journal_info(self) -> dict[str, Any]:
        return self._health.info()

    def write_owed(self) -> None:
        """Write the rows the disk refused (the results of commands answered meanwhile)."""
        self._health.write_owed()

    def retry_journal(self) -> None:
        """While the journal cannot write, try again: called with the bridge's info."""
        self._health.retry()
