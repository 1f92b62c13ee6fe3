"""The command journal: every command the broker delivered, until its result is out.

A command is written here before the broker gets its acknowledgement, so a crash,
kill -9 or SIGTERM never loses it: after a restart, queued commands run (if still
fresh), a command cut off after its first set call gets an "outcome unknown" result
instead of a blind resend, and results that could not be published go out.

sqlite3 (stdlib) in WAL mode with synchronous=FULL: each commit is on disk when it
returns, and a killed process leaves a consistent file.
Pure storage: no asyncio, no MQTT.
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import os
import sqlite3
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from goe2mqtt.util.state_file import private_dir

QUEUED = "queued"  # received, not started: safe to run after a restart
RUNNING = "running"  # a set call may have reached the charger: never run again
DONE = "done"  # has its result, not yet published
PUBLISHED = "published"  # over; kept a while to recognise a late redelivery

_SCHEMA = """
CREATE TABLE IF NOT EXISTS commands (
    seq INTEGER PRIMARY KEY AUTOINCREMENT,
    charger TEXT NOT NULL,
    service TEXT NOT NULL,
    payload BLOB NOT NULL,
    retained INTEGER NOT NULL,
    received REAL NOT NULL,
    mid INTEGER,            -- MQTT packet id while a redelivery may still come
    state TEXT NOT NULL,
    sent TEXT,              -- JSON: the set calls planned when it started
    result TEXT,            -- JSON: the result, once there is one
    packet_id INTEGER,      -- MQTT packet id of the result's publish (QoS 2), set before it left
    taken INTEGER,          -- 1: the broker took it (PUBREC); only our PUBREL is owed
    site INTEGER            -- 1: a site's own write (2: one that only lowers), 0: a user's
                            -- (NULL: an earlier version's)
);
CREATE INDEX IF NOT EXISTS commands_state ON commands(state);
CREATE INDEX IF NOT EXISTS commands_mid ON commands(mid);
CREATE INDEX IF NOT EXISTS commands_charger ON commands(charger, seq);
CREATE TABLE IF NOT EXISTS probe (id INTEGER PRIMARY KEY, at REAL);  -- Journal.probe
"""


class JournalLocked(Exception):
    """Another running instance uses this journal (same state_dir and client_id)."""


class JournalUnusable(Exception):
    """The journal file cannot be opened or read (read-only folder, not a database)."""


class JournalCorrupt(JournalUnusable):
    """The file is there but is not a readable journal (truncated, overwritten)."""


class JournalWriteFailed(Exception):
    """A write did not reach the disk (full, read-only, I/O error); nothing was stored."""


# What a refused copy of an oversized payload keeps: enough to see what it was.
MAX_STORED_PAYLOAD = 4096


@dataclass(frozen=True)
class Entry:
    seq: int
    charger: str
    service: str
    payload: bytes
    retained: bool
    received: float
    state: str
    sent: list[dict[str, Any]] | None = None
    result: dict[str, Any] | None = None
    packet_id: int | None = None  # the result's publish, if it may have left
    taken: bool = False  # the broker took it under packet_id (PUBREC)
    # A site's own write (from its topic, which no user can publish on), not a user's
    # command; None: journaled by a version that did not record it.
    site: bool | None = False
    # A site's write that only lowers the draw (site 2 in the table): run after a restart.
    lowers: bool = False


class Journal:
    def __init__(self, path: Path) -> None:
        self.path = path
        try:
            private_dir(path.parent)
            # One process per journal: a second bridge with the same client id would run
            # the same commands and fight over the same MQTT session.
            flags = os.O_RDWR | os.O_CREAT | os.O_APPEND
            lock = os.open(path.with_name(path.name + ".lock"), flags, 0o600)
            self._lock_file = os.fdopen(lock, "a+")
        except OSError as exc:
            raise JournalUnusable(f"{path}: {exc.strerror or exc}") from None
        try:
            fcntl.flock(self._lock_file, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            self._lock_file.seek(0)
            holder = self._lock_file.read().strip() or "unknown"
            self._lock_file.close()
            raise JournalLocked(
                f"another goe2mqtt is already running (pid {holder}, state dir {path.parent}):"
                f" {path} is in use by another goe2mqtt process"
            ) from None
        # Who holds it, for the next one's message (the lock, not the file, is the truth).
        # Unbuffered: a full disk refuses the write now, not at close.
        with contextlib.suppress(OSError):
            os.ftruncate(self._lock_file.fileno(), 0)
            os.write(self._lock_file.fileno(), f"{os.getpid()}\n".encode())
        # -wal and -shm hold the same payloads as the file itself: created 0600 too.
        old_umask = os.umask(0o077)
        try:
            self._db = sqlite3.connect(path, isolation_level=None, check_same_thread=False)
            self._db.execute("PRAGMA journal_mode=WAL")
            self._db.execute("PRAGMA synchronous=FULL")
            self._db.executescript(_SCHEMA)
            columns = {row[1] for row in self._db.execute("PRAGMA table_info(commands)")}
            for column in ("packet_id", "taken", "site"):  # a journal of an earlier version
                if column not in columns:
                    self._db.execute(f"ALTER TABLE commands ADD COLUMN {column} INTEGER")
            # A day of commands at most: a full check is cheap, and a broken page found
            # now is a clean fresh start instead of a crash at the first command.
            verdict = self._db.execute("PRAGMA quick_check").fetchone()[0]
            if verdict != "ok":
                raise sqlite3.DatabaseError(f"database disk image is malformed ({verdict})")
        except sqlite3.DatabaseError as exc:
            self._lock_file.close()
            corrupt = "not a database" in str(exc) or "malformed" in str(exc)
            raise (JournalCorrupt if corrupt else JournalUnusable)(f"{path}: {exc}") from None
        finally:
            os.umask(old_umask)
        for name in (path, *(path.with_name(path.name + suffix) for suffix in ("-wal", "-shm"))):
            if name.exists():
                os.chmod(name, 0o600)  # payloads are the user's commands: not for others

    @staticmethod
    def move_aside(path: Path, stamp: str) -> Path:
        """Rename a corrupt journal (and its -wal/-shm) out of the way; the new name."""
        aside = path.with_name(f"{path.name}.corrupt-{stamp}")
        for suffix in ("", "-wal", "-shm"):
            source = path.with_name(path.name + suffix)
            if source.exists():
                source.rename(aside.with_name(aside.name + suffix))
        return aside

    def close(self) -> None:
        self._db.close()
        self._lock_file.close()

    # --- writes: each is one committed transaction ------------------------------------

    def record(
        self,
        charger: str,
        service: str,
        payload: bytes,
        *,
        retained: bool,
        received: float,
        mid: int | None = None,
        dup: bool = False,
        site: bool = False,
        lowers: bool = False,
    ) -> int | None:
        """Write a delivered command; its seq, or None for a redelivery we already hold.

        QoS 1 is "at least once": a command journaled just before a crash, whose
        acknowledgement never left, comes again with the DUP flag and the same packet
        id. A packet id the broker reuses was acknowledged, so it is forgotten then.
        """
        payload = payload[:MAX_STORED_PAYLOAD]
        with self._writing(), self._db:
            if mid is not None:
                if dup:
                    row = self._db.execute(
                        "SELECT seq FROM commands WHERE mid = ? AND charger = ? AND service = ?"
                        " AND payload = ?",
                        (mid, charger, service, payload),
                    ).fetchone()
                    if row is not None:
                        return None
                self._db.execute("UPDATE commands SET mid = NULL WHERE mid = ?", (mid,))
            marked = 2 if site and lowers else int(site)
            cursor = self._db.execute(
                "INSERT INTO commands (charger, service, payload, retained, received, mid, state,"
                " site) VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
                (charger, service, payload, int(retained), received, mid, QUEUED, marked),
            )
        assert cursor.lastrowid is not None
        return cursor.lastrowid

    def start(self, seq: int, sent: list[dict[str, Any]]) -> None:
        """Mark the command as running: from here on a crash leaves its outcome unknown."""
        with self._writing():
            self._db.execute(
                "UPDATE commands SET state = ?, sent = ? WHERE seq = ?",
                (RUNNING, json.dumps(sent), seq),
            )

    def finish(self, seq: int, result: dict[str, Any]) -> None:
        with self._writing():
            self._db.execute(
                "UPDATE commands SET state = ?, result = ? WHERE seq = ?",
                (DONE, json.dumps(result), seq),
            )

    def sending(self, seq: int, packet_id: int) -> None:
        """The result goes out under ``packet_id`` (written before it leaves): after a
        crash it is sent again under the same id, which the broker recognises."""
        with self._writing():
            self._db.execute(
                "UPDATE commands SET packet_id = ?, taken = 0 WHERE seq = ? AND state = ?",
                (packet_id, seq, DONE),
            )

    def taken(self, seq: int, packet_id: int) -> None:
        """The broker took the result (QoS 2 PUBREC) and hands it on at our PUBREL: after
        a crash only that PUBREL is owed, never the result again."""
        with self._writing():
            self._db.execute(
                "UPDATE commands SET packet_id = ?, taken = 1 WHERE seq = ? AND state = ?",
                (packet_id, seq, DONE),
            )

    def published(self, seq: int) -> None:
        """The broker has the result: the command is over."""
        with self._writing():
            self._db.execute(
                "UPDATE commands SET state = ? WHERE seq = ? AND state = ?",
                (PUBLISHED, seq, DONE),
            )

    def settle(self, seq: int, state: str, result: dict[str, Any] | None) -> None:
        """Write what a failed write left only in memory (a full disk since healed): the
        command's state and, if given, its result. Unwritten, its row stayed *queued* or
        *running*, and the next start ran it again or answered it again."""
        with self._writing():
            if result is None:
                self._db.execute("UPDATE commands SET state = ? WHERE seq = ?", (state, seq))
            else:
                self._db.execute(
                    "UPDATE commands SET state = ?, result = ? WHERE seq = ?",
                    (state, json.dumps(result), seq),
                )

    def probe(self) -> None:
        """A write that stores nothing of use: whether the journal can write again (a
        disk freed while no command came)."""
        with self._writing():
            self._db.execute("INSERT OR REPLACE INTO probe (id, at) VALUES (1, ?)", (time.time(),))

    def prune(self, before: float) -> int:
        """Forget finished commands received before ``before`` (unix time)."""
        with self._writing():
            cursor = self._db.execute(
                "DELETE FROM commands WHERE state = ? AND received < ?", (PUBLISHED, before)
            )
        return cursor.rowcount

    def forget_packet_ids(self) -> None:
        """The broker holds no session for us: packet ids start afresh, and a DUP
        delivery can no longer be one we journaled."""
        with self._writing():
            self._db.execute("UPDATE commands SET mid = NULL WHERE mid IS NOT NULL")

    @contextlib.contextmanager
    def _writing(self) -> Iterator[None]:
        try:
            yield
        except sqlite3.Error as exc:
            raise JournalWriteFailed(f"cannot write {self.path.name}: {exc}") from None

    # --- reads ------------------------------------------------------------------------

    def entries(self, state: str) -> list[Entry]:
        rows = self._db.execute(
            "SELECT seq, charger, service, payload, retained, received, state, sent, result,"
            " packet_id, taken, site FROM commands WHERE state = ? ORDER BY seq",
            (state,),
        ).fetchall()
        return _entries(rows)

    def latest(self, charger: str, limit: int = 50) -> list[Entry]:
        """A charger's last ``limit`` commands, newest first (the status page shows them)."""
        rows = self._db.execute(
            "SELECT seq, charger, service, payload, retained, received, state, sent, result,"
            " packet_id, taken, site FROM commands WHERE charger = ? ORDER BY seq DESC LIMIT ?",
            (charger, limit),
        ).fetchall()
        return _entries(rows)

    def count(self) -> dict[str, int]:
        rows = self._db.execute("SELECT state, COUNT(*) FROM commands GROUP BY state")
        return {state: n for state, n in rows}


def _entries(rows: list[Any]) -> list[Entry]:
    return [
        Entry(
            seq=seq,
            charger=charger,
            service=service,
            payload=bytes(payload),
            retained=bool(retained),
            received=received,
            state=row_state,
            sent=json.loads(sent) if sent else None,
            result=json.loads(result) if result else None,
            packet_id=packet_id,
            taken=bool(taken),
            site=None if site is None else bool(site),
            lowers=site == 2,
        )
        for (seq, charger, service, payload, retained, received, row_state, sent, result,
             packet_id, taken, site) in rows
    ]  # fmt: skip
