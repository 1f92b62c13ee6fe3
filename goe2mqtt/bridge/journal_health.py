"""Whether the command journal can write: said once each way, and tried again.

A write that fails (a full or read-only state_dir, I/O errors) makes the journal
unhealthy: logged once (journal_write_failed), shown in bridge/info, /readyz and the
bridge's device. The next write that succeeds heals it (journal_recovered), after the
rows the disk refused meanwhile are written (bridge.results owes them). While unhealthy,
the bridge's heartbeat tries again (retry): the owed rows, or a probe write when none
are owed. Until 2026-12-07 only a command's write could heal it: a disk freed while no
command came left /readyz at 503 (and a container's HEALTHCHECK unhealthy) for good.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from typing import Any, Protocol

import structlog

from goe2mqtt.commands.journal import Journal, JournalWriteFailed

log = structlog.get_logger()


class OwedRows(Protocol):
    """The journal's rows a failed write left only in memory (bridge.results)."""

    @property
    def marks_owed(self) -> int: ...

    def write_owed(self) -> int:
        """Write them; how many. JournalWriteFailed if the journal still cannot."""
        ...


class JournalHealth:
    def __init__(self, journal: Journal, on_change: Callable[[], None]) -> None:
        self.journal = journal
        self.error: str | None = None  # why the journal cannot write now
        self.failures = 0
        self._on_change = on_change
        self.owed: OwedRows | None = None  # set by the desk once its results exist
        # Set while the journal writes: what a command whose running mark failed waits for.
        self.writable = asyncio.Event()
        self.writable.set()

    def info(self) -> dict[str, Any]:
        return {"ok": self.error is None, "error": self.error, "failed_writes": self.failures}

    def failed(self, exc: JournalWriteFailed) -> None:
        self.failures += 1
        if self.error is None:
            log.error(
                "journal_write_failed",
                file=str(self.journal.path),
                reason=str(exc),
                effect="new commands are refused and queued ones wait until the journal"
                " can write again; polling and publishing go on",
            )
            self.error = str(exc)
            self.writable.clear()
            self._on_change()

    def ok(self) -> None:
        """A write succeeded: healthy again once what it owes is written too."""
        if self.error is None:
            return
        if self.owed is not None and self.owed.marks_owed:
            self.write_owed()  # heals it (back here, nothing owed) or fails once more
            return
        log.warning("journal_recovered", file=str(self.journal.path),
                    failed_writes=self.failures)  # fmt: skip
        self.error = None
        self.writable.set()
        self._on_change()

    def write_owed(self) -> None:
        """Write the rows of commands answered while the disk refused (left queued or
        running, the next start ran them again or answered "outcome unknown")."""
        if self.owed is None or not self.owed.marks_owed:
            return
        try:
            written = self.owed.write_owed()
        except JournalWriteFailed as exc:
            self.failed(exc)
            return
        log.info("journal_owed_written", file=str(self.journal.path), rows=written)
        self.ok()

    def retry(self) -> None:
        """While unhealthy, try again (with the bridge's info): what is owed, or a probe
        write. A disk freed heals it without waiting for a command."""
        if self.error is None:
            return
        if self.owed is not None and self.owed.marks_owed:
            self.write_owed()
            return
        try:
            self.journal.probe()
        except JournalWriteFailed as exc:
            self.failed(exc)
            return
        self.ok()
