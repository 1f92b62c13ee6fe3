"""The results' way out: every command's result, from the desk to the broker, exactly once.

A result stays owed (here and in the journal) until the broker acknowledged it. Its
packet id is journaled as it leaves, so that after a kill -9 the next run sends it
again under the same id and the broker recognises it; once the broker took it, only
the PUBREL is owed. After a restart the results the journal holds go out first.

A result the journal does not hold (a command refused on arrival: malformed, unknown
charger or service) goes out from memory, and at most MAX_UNSTORED of them wait at once:
beyond, a refusal is dropped and counted (said once a minute). A broker user publishing
such commands faster than results go out (one QoS 2 exchange each) queued one each,
without bound, and every real command's result waited behind them.
"""

from __future__ import annotations

import asyncio
import functools
import time
from collections import deque
from collections.abc import Callable
from typing import Any, Protocol

import structlog

from goe2mqtt.commands.journal import DONE, PUBLISHED, Journal, JournalWriteFailed
from goe2mqtt.commands.payloads import result_json
from goe2mqtt.mqtt.session import PublishRefused
from goe2mqtt.mqtt.topics import Topics
from goe2mqtt.util.aio import wait_until_set

log = structlog.get_logger()

RESULT_FLUSH = 5.0  # on stop, results may take this long to reach the broker
MAX_UNSTORED = 1000  # results the journal does not hold, waiting at once
DROPS_LOGGED_EVERY = 60.0  # s


class ResultSender(Protocol):
    @property
    def connected(self) -> bool: ...

    async def publish_once(
        self,
        topic: str,
        payload: str | bytes,
        *,
        on_sent: Callable[[int], None] | None = None,
        on_taken: Callable[[int], None] | None = None,
        packet_id: int | None = None,
    ) -> None:
        """Returns once the broker has it, exactly once however long that takes;
        PublishRefused if it never will. ``on_sent(packet_id)``: it may leave under that
        id now; ``on_taken(packet_id)``: the broker took it and hands it on at our next
        word; ``packet_id``: given to resume_once."""

    def resume_once(self, topic: str, payload: str | bytes, packet_id: int, *, taken: bool) -> None:
        """An earlier process's message, sent under ``packet_id`` (and taken by the
        broker): owed again under that id (before the session connects)."""


class ResultQueue:
    """The results the broker has not acknowledged yet, published in order."""

    def __init__(
        self,
        journal: Journal,
        topics: Topics,
        *,
        on_journal_failed: Callable[[JournalWriteFailed], None],
    ) -> None:
        self._journal = journal
        self._topics = topics
        self._journal_failed = on_journal_failed  # the desk keeps the journal's health
        # Results not yet acknowledged by the broker: (journal seq, topic, payload, the
        # packet id an earlier run sent it under); seq None for a command the journal
        # could not store.
        self._results: deque[tuple[int | None, str, str, int | None]] = deque()
        self.refused = 0
        self._unstored = 0  # of the results owed, those the journal does not hold
        self.dropped = 0  # refusals not sent: MAX_UNSTORED waited already
        self._drops_said_at: float | None = None
        self._drops_since_said = 0
        self._added = asyncio.Event()
        self._drained = asyncio.Event()
        # Journal writes a full disk refused, by seq: the state (and result) its row
        # should have. Written once the journal can (write_owed): unwritten, a command
        # answered meanwhile stayed queued or running, and ran or was answered again at
        # the next start.
        self._marks_owed: dict[int, tuple[str, dict[str, Any] | None]] = {}
        # Refusals whose rows still say queued (their marks owed): published only once
        # the journal holds them. Out before, a kill -9 left the row queued and the next
        # start ran the command its sender had been told was not run.
        self._held: dict[int, tuple[str, dict[str, Any]]] = {}

    @property
    def pending(self) -> int:
        return len(self._results) + len(self._held)

    def owed(self) -> list[str]:
        """The results the broker has not acknowledged yet, as JSON, oldest first."""
        return [payload for _, _, payload, _ in self._results]

    def resume(self, sender: ResultSender) -> None:
        """Owe again what the last run's journal holds (before the session connects)."""
        for entry in self._journal.entries(DONE):
            assert entry.result is not None
            self.add(entry.seq, entry.charger, entry.result, entry.packet_id)
            if entry.packet_id is not None:  # it may have left: again under the same id
                topic, payload = self._results[-1][1:3]
                sender.resume_once(topic, payload, entry.packet_id, taken=entry.taken)

    @property
    def marks_owed(self) -> int:
        """Journal writes the disk refused, still to be written."""
        return len(self._marks_owed)

    def write_owed(self) -> int:
        """Write the marks the disk refused, oldest first; how many were written.
        JournalWriteFailed (the rest stay owed) if the journal still cannot write."""
        written = 0
        for seq, (state, result) in list(self._marks_owed.items()):
            self._journal.settle(seq, state, result)
            del self._marks_owed[seq]
            written += 1
            if (held := self._held.pop(seq, None)) is not None:
                self._owe(seq, *held)
        return written

    def add(
        self,
        seq: int | None,
        charger: str,
        result: dict[str, Any],
        packet_id: int | None = None,
        *,
        stored: bool = True,
        hold: bool = False,
    ) -> None:
        """Owe ``result``; ``stored`` False: the journal could not write it (its row is
        written once the journal can); ``hold``: and it goes out only then."""
        if seq is not None and not stored:
            self._marks_owed[seq] = (DONE, result)
            if hold:
                self._held[seq] = (charger, result)
                return
        self._owe(seq, charger, result, packet_id)

    def _owe(
        self, seq: int | None, charger: str, result: dict[str, Any], packet_id: int | None = None
    ) -> None:
        if seq is None:
            if self._unstored >= MAX_UNSTORED:
                self._dropped(charger)
                return
            self._unstored += 1
        self._results.append((seq, self._topics.result(charger), result_json(result), packet_id))
        self._drained.clear()
        self._added.set()

    async def publish_forever(self, sender: ResultSender) -> None:
        """Publish results in order; each leaves the journal once the broker has it."""
        while True:
            if not self._results:
                self._drained.set()
                self._added.clear()
                await self._added.wait()
                continue
            seq, topic, payload, packet_id = self._results[0]
            noted = seq is not None
            try:
                await sender.publish_once(
                    topic,
                    payload,
                    on_sent=functools.partial(self._sending, seq) if noted else None,
                    on_taken=functools.partial(self._taken, seq) if noted else None,
                    packet_id=packet_id,
                )
            except PublishRefused:
                # The broker will not take it (an ACL): resending would block every
                # result behind it. The journal keeps it owed for the next start.
                self._sent()
                self.refused += 1
                continue
            self._sent()
            if seq is not None:
                self._published(seq)

    def _published(self, seq: int) -> None:
        """The broker has the result: its row is over (now, or once the journal can)."""
        owed = self._marks_owed.get(seq)
        if owed is not None:  # its result is not in the journal yet either
            self._marks_owed[seq] = (PUBLISHED, owed[1])
            return
        try:
            self._journal.published(seq)
        except JournalWriteFailed as exc:
            # Owed until the journal can write; a kill -9 before that sends it again
            # after the restart: its packet once more (the broker answers "done"), or,
            # if no packet id was noted, a repeat.
            self._marks_owed[seq] = (PUBLISHED, None)
            self._journal_failed(exc)

    def _sent(self) -> None:
        if self._results.popleft()[0] is None:
            self._unstored -= 1

    def _dropped(self, charger: str) -> None:
        self.dropped += 1
        self._drops_since_said += 1
        now = time.monotonic()
        if self._drops_said_at is None or now - self._drops_said_at >= DROPS_LOGGED_EVERY:
            log.warning(
                "results_dropped",
                charger=charger[:40],
                times=self._drops_since_said,
                reason=f"{MAX_UNSTORED} refusals of commands that could never run wait"
                " already: someone publishes such commands faster than results go out",
            )
            self._drops_said_at, self._drops_since_said = now, 0

    def _sending(self, seq: int | None, packet_id: int) -> None:
        """The result leaves under ``packet_id``: after a kill -9 the next run sends it
        again under the same id, which the broker recognises as the same message."""
        assert seq is not None
        try:
            self._journal.sending(seq, packet_id)
        except JournalWriteFailed as exc:
            self._journal_failed(exc)  # a kill -9 now may repeat this result once

    def _taken(self, seq: int | None, packet_id: int) -> None:
        """The broker took the result (before our PUBREL): after a kill -9 from here on,
        the next run owes only the PUBREL, never the result again."""
        assert seq is not None
        try:
            self._journal.taken(seq, packet_id)
        except JournalWriteFailed as exc:
            self._journal_failed(exc)  # a kill -9 now may repeat this result once

    async def flush(self, sender: ResultSender, within: float = RESULT_FLUSH) -> None:
        """On stop: give the results still owed ``within`` s to go out (the journal keeps
        the rest for the next start); not a moment when the session is not connected."""
        if self._results and sender.connected and within > 0:
            await wait_until_set(self._drained, within)
