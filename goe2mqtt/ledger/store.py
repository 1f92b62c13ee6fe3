"""The books on disk: {client_id}.sessions in state_dir, sqlite, beside the journal.

The journal's durability rules: WAL with synchronous=FULL (a commit is on disk when
it returns, a killed process leaves a consistent file), the file and its -wal/-shm
0600. A session's opening and closing are committed at once; its progress (energy,
cost so far) in batches, so 10 000 charging chargers cost a commit now and then, not
an fsync per delta. A partial unique index keeps one open session per charger.
Readers (`goe2mqtt sessions`) open it read-only while the daemon writes.
"""

from __future__ import annotations

import contextlib
import json
import os
import sqlite3
from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import Any

from goe2mqtt.ledger.record import Session, cents
from goe2mqtt.util.state_file import private_dir

_SCHEMA = """
CREATE TABLE IF NOT EXISTS sessions (
    id TEXT PRIMARY KEY,
    charger TEXT NOT NULL,
    serial TEXT,
    started REAL NOT NULL,
    ended REAL,                 -- NULL while open
    end_reason TEXT,
    eto_start REAL,
    eto_last REAL,
    energy_wh REAL,             -- eto_last - eto_start
    seen_at REAL NOT NULL,
    charger_wh REAL,
    energy_grid_wh REAL NOT NULL,
    energy_pv_wh REAL NOT NULL,
    cost_so_far REAL NOT NULL,
    cost REAL,                  -- NULL: not priced (no tariff, flagged, no price)
    unpriced_wh REAL NOT NULL,
    priced INTEGER NOT NULL,
    currency TEXT NOT NULL,
    peak_power_w REAL,
    phases INTEGER,
    card_slot INTEGER,
    card TEXT NOT NULL,
    reboots INTEGER,
    flags TEXT NOT NULL,        -- JSON list; empty: not flagged
    announced INTEGER NOT NULL DEFAULT 0,
    connected_ms INTEGER        -- the charger's lccfi at the connection (ms since its boot)
);
CREATE UNIQUE INDEX IF NOT EXISTS one_open_session ON sessions(charger) WHERE ended IS NULL;
CREATE INDEX IF NOT EXISTS sessions_started ON sessions(started);
-- A charger's last session and this month's, at start-up, for each of a fleet.
CREATE INDEX IF NOT EXISTS sessions_charger ON sessions(charger, started);
CREATE INDEX IF NOT EXISTS sessions_unannounced ON sessions(announced) WHERE announced = 0;
-- What the ledger keeps beside the sessions: the prune horizon (horizon.py).
CREATE TABLE IF NOT EXISTS facts (name TEXT PRIMARY KEY, value REAL NOT NULL);
"""

_FIELDS = (
    "id", "charger", "serial", "started", "ended", "end_reason", "eto_start", "eto_last",
    "energy_wh", "seen_at", "charger_wh", "energy_grid_wh", "energy_pv_wh", "cost_so_far",
    "cost", "unpriced_wh", "priced", "currency", "peak_power_w", "phases", "card_slot", "card",
    "reboots", "flags", "announced", "connected_ms",
)  # fmt: skip
# Columns added since the first release: a file from before gets them at open.
_ADDED = {"connected_ms": "INTEGER"}
# PRAGMA user_version: 1 since the cost column is in cents (a file of 0 is brought up
# to it at open). A file of a later version is refused rather than misread.
SCHEMA_VERSION = 1
_STORED = tuple(f for f in _FIELDS if f not in ("energy_wh", "cost"))
# Not INSERT OR REPLACE: that would delete another open session of the charger to
# make room, where the index must refuse instead.
_UPSERT = (
    f"INSERT INTO sessions ({', '.join(_FIELDS)}) VALUES ({', '.join('?' for _ in _FIELDS)})"
    f" ON CONFLICT(id) DO UPDATE SET {', '.join(f'{f} = excluded.{f}' for f in _FIELDS[1:])}"
)


_PROGRESS = (
    "UPDATE sessions SET started = ?, eto_last = ?, energy_wh = ?, seen_at = ?, charger_wh = ?,"
    " energy_grid_wh = ?, energy_pv_wh = ?, cost_so_far = ?, cost = ?, unpriced_wh = ?,"
    " peak_power_w = ?, phases = ?, card_slot = ?, card = ?, flags = ?, connected_ms = ?"
    " WHERE id = ?"
)


class StoreUnusable(Exception):
    """The sessions file cannot be opened or written."""


def _row(session: Session) -> tuple[Any, ...]:
    values = {name: getattr(session, name) for name in _STORED}
    values.update(
        energy_wh=session.energy_wh,
        cost=session.cost,
        flags=json.dumps(session.flags),
        priced=int(session.priced),
        announced=int(session.announced),
    )
    return tuple(values[name] for name in _FIELDS)


def session_of(row: sqlite3.Row) -> Session:
    present = row.keys()  # a file from before a column was added, opened read-only
    values = {name: row[name] for name in _STORED if name in present}
    values["flags"] = json.loads(values["flags"])
    values["priced"] = bool(values["priced"])
    values["announced"] = bool(values["announced"])
    return Session(**values)


class SessionStore:
    def __init__(self, path: Path, *, read_only: bool = False) -> None:
        self.path = path
        old_umask = os.umask(0o077)  # -wal and -shm are created 0600 too
        try:
            if read_only:
                self._db = sqlite3.connect(f"file:{path}?mode=ro", uri=True, isolation_level=None)
            else:
                private_dir(path.parent)
                self._db = sqlite3.connect(path, isolation_level=None, check_same_thread=False)
            version = self._db.execute("PRAGMA user_version").fetchone()[0]
            refused = self._not_ours(version, read_only)
            if refused is not None:
                self._db.close()
                raise StoreUnusable(f"{path}: {refused}")
            if not read_only:
                self._db.execute("PRAGMA journal_mode=WAL")
                self._db.execute("PRAGMA synchronous=FULL")
                self._db.executescript(_SCHEMA)
                self._add_columns()
                if version < SCHEMA_VERSION:
                    with contextlib.suppress(sqlite3.Error):  # a full disk: at the next start
                        self._upgrade()
            self._db.row_factory = sqlite3.Row
        except (sqlite3.Error, OSError) as exc:
            raise StoreUnusable(f"{path}: {exc}") from None
        finally:
            os.umask(old_umask)
        if not read_only:
            for suffix in ("", "-wal", "-shm"):
                name = path.with_name(path.name + suffix)
                if name.exists():
                    os.chmod(name, 0o600)  # who charged when, with which card: private

    def _add_columns(self) -> None:
        have = {row[1] for row in self._db.execute("PRAGMA table_info(sessions)")}
        for name, kind in _ADDED.items():
            if name not in have:
                self._db.execute(f"ALTER TABLE sessions ADD COLUMN {name} {kind}")

    def _not_ours(self, version: int, read_only: bool) -> str | None:
        """Why this file is not a ledger this version may read or write (None: it is,
        or it is new). Another program's database is neither read nor written into."""
        if version > SCHEMA_VERSION:
            return (
                f"written by a newer goe2mqtt (ledger version {version}; this one reads up"
                f" to {SCHEMA_VERSION}): upgrade, or move the file away"
            )
        tables = {row[0] for row in self._db.execute("SELECT name FROM sqlite_master")}
        if "sessions" in tables:
            columns = {row[1] for row in self._db.execute("PRAGMA table_info(sessions)")}
            if {"charger", "started", "eto_start", "cost_so_far"} <= columns:
                return None
        elif not tables and not read_only:
            return None  # new: made a ledger now
        return "not a goe2mqtt session ledger (another program's database, or empty)"

    def _upgrade(self) -> None:
        """A file of version 0 kept costs to 4 decimals: in cents, as they are shown,
        so that the totals add up (Session.cost)."""
        self._db.create_function("cents", 1, cents, deterministic=True)  # Python's rounding
        with self._db:
            self._db.execute("BEGIN IMMEDIATE")
            self._db.execute(
                "UPDATE sessions SET cost = cents(cost_so_far)"
                " WHERE cost IS NOT NULL AND cost != cents(cost_so_far)"
            )
            self._db.execute(f"PRAGMA user_version = {SCHEMA_VERSION}")

    def close(self) -> None:
        self._db.close()

    @contextlib.contextmanager
    def _writing(self) -> Iterator[None]:
        try:
            with self._db:  # one transaction, committed (and synced) on leaving
                self._db.execute("BEGIN IMMEDIATE")
                yield
        except sqlite3.Error as exc:
            raise StoreUnusable(f"cannot write {self.path.name}: {exc}") from None

    # --- writes ---------------------------------------------------------------------------

    def save(self, sessions: Iterable[Session]) -> None:
        """Write these sessions (opened, closed or progressed) in one commit."""
        rows = [_row(s) for s in sessions]
        if not rows:
            return
        with self._writing():
            self._db.executemany(_UPSERT, rows)

    def save_progress(self, sessions: list[Session]) -> None:
        """What counting changes of open sessions already stored, in one commit: an
        UPDATE of those columns only (a few times cheaper than save's upsert, which
        matters for a fleet's thousand a minute). One not stored yet is saved whole."""
        rows = [
            (s.started, s.eto_last, s.energy_wh, s.seen_at, s.charger_wh, s.energy_grid_wh,
             s.energy_pv_wh, s.cost_so_far, s.cost, s.unpriced_wh, s.peak_power_w, s.phases,
             s.card_slot, s.card, json.dumps(s.flags) if s.flags else "[]", s.connected_ms,
             s.id)
            for s in sessions
        ]  # fmt: skip
        if not rows:
            return
        with self._writing():
            cursor = self._db.executemany(_PROGRESS, rows)
            if cursor.rowcount != len(rows):
                self._db.executemany(_UPSERT, [_row(s) for s in sessions])

    def announced(self, session_id: str) -> None:
        with self._writing():
            self._db.execute("UPDATE sessions SET announced = 1 WHERE id = ?", (session_id,))

    def prune(self, before: float) -> int:
        """Forget closed, announced sessions that ended before ``before``, and keep
        ``before`` as the prune horizon (in the same commit)."""
        with self._writing():
            cursor = self._db.execute(
                "DELETE FROM sessions WHERE ended IS NOT NULL AND ended < ? AND announced = 1",
                (before,),
            )
            self._keep_horizon(before)
        return cursor.rowcount

    def keep_horizon(self, before: float) -> None:
        """Keep ``before`` as the prune horizon, pruning nothing (at the first start, so
        a session later stored under a clock stepped ahead never seeds it)."""
        with self._writing():
            self._keep_horizon(before)

    def _keep_horizon(self, before: float) -> None:
        self._db.execute(
            "INSERT INTO facts (name, value) VALUES ('prune_horizon', ?)"
            " ON CONFLICT(name) DO UPDATE SET value = excluded.value",
            (before,),
        )

    def prune_horizon(self) -> float | None:
        """The ``before`` of the last prune (None: never pruned)."""
        row = self._db.execute("SELECT value FROM facts WHERE name = 'prune_horizon'").fetchone()
        return None if row is None else float(row[0])

    def newest(self) -> float | None:
        """The latest start of a session (None: no session); from the index, not a scan
        of years of sessions at each start."""
        value = self._db.execute("SELECT MAX(started) FROM sessions").fetchone()[0]
        return None if value is None else float(value)

    # --- reads ----------------------------------------------------------------------------

    def open_sessions(self) -> list[Session]:
        rows = self._db.execute("SELECT * FROM sessions WHERE ended IS NULL").fetchall()
        return [session_of(r) for r in rows]

    def unannounced(self) -> list[Session]:
        rows = self._db.execute(
            "SELECT * FROM sessions WHERE announced = 0 AND ended IS NOT NULL ORDER BY ended"
        ).fetchall()
        return [session_of(r) for r in rows]

    def last_closed(self, charger: str) -> Session | None:
        row = self._db.execute(
            "SELECT * FROM sessions WHERE charger = ? AND ended IS NOT NULL"
            " ORDER BY started DESC LIMIT 1",
            (charger,),
        ).fetchone()
        return None if row is None else session_of(row)

    def totals_since(
        self, charger: str, since: float, until: float = float("inf")
    ) -> tuple[float, float, dict[int, float]]:
        """Closed sessions that started in [since, until): (Wh, cost, Wh per card slot).
        ``until``: a month's end, so that a clock stepped years back shows that month's,
        not every session since."""
        energy = cost = 0.0
        per_card: dict[int, float] = {}
        rows = self._db.execute(
            "SELECT card_slot, SUM(COALESCE(energy_wh, 0)), SUM(COALESCE(cost, 0))"
            " FROM sessions WHERE charger = ? AND ended IS NOT NULL AND started >= ?"
            " AND started < ? GROUP BY card_slot",
            (charger, since, until),
        )
        for slot, wh, money in rows:
            energy += wh
            cost += money
            if slot is not None:
                per_card[slot] = per_card.get(slot, 0.0) + wh
        return energy, cost, per_card

    def chargers(self) -> list[str]:
        """Every charger with a session on the books."""
        return [row[0] for row in self._db.execute("SELECT DISTINCT charger FROM sessions")]

    def sessions(
        self,
        *,
        charger: str | None = None,
        since: float | None = None,
        until: float | None = None,
        card: str | None = None,
        chargers: tuple[str, ...] | None = None,
    ) -> list[Session]:
        clauses, params = _filters(charger, since, until, card, chargers)
        rows = self._db.execute(
            f"SELECT * FROM sessions {clauses} ORDER BY started, charger", params
        ).fetchall()
        return [session_of(r) for r in rows]

    def span(self, **filters: Any) -> tuple[float, float] | None:
        """The first and last start among the sessions the filters select."""
        clauses, params = _filters(**filters)
        first, last = self._db.execute(
            f"SELECT MIN(started), MAX(started) FROM sessions {clauses}", params
        ).fetchone()
        return None if first is None else (first, last)

    def summary(
        self, group: str, months: list[tuple[str, float, float]], **filters: Any
    ) -> list[tuple[Any, ...]]:
        """Per month, card (or charger) and currency: count, Wh, grid Wh, PV Wh, cost,
        unpriced count, currency (costs in two currencies are never added).
        One pass over the sessions the filters select (a plain scan of the table when
        they select all: sqlite reads it in order, no index lookups)."""
        assert group in ("card", "charger")
        clauses, params = _filters(**filters)
        case = " ".join("WHEN started < ? THEN ?" for _ in months)
        labels = [value for label, _, end in months for value in (end, label)]
        return [
            tuple(row)
            for row in self._db.execute(
                f"SELECT CASE {case} END AS month, {group}, COUNT(*), TOTAL(energy_wh),"
                " TOTAL(energy_grid_wh), TOTAL(energy_pv_wh), TOTAL(cost), SUM(cost IS NULL),"
                f" currency FROM sessions {clauses} GROUP BY month, {group}, currency"
                f" ORDER BY month, {group}, currency",
                [*labels, *params],
            )
        ]


def _filters(
    charger: str | None = None,
    since: float | None = None,
    until: float | None = None,
    card: str | None = None,
    chargers: tuple[str, ...] | None = None,
) -> tuple[str, list[Any]]:
    """``chargers``: only these (a report's chargers of one timezone)."""
    clauses: list[str] = []
    params: list[Any] = []
    for clause, value in (
        ("charger = ?", charger), ("started >= ?", since), ("started < ?", until),
        ("card = ?", card),
    ):  # fmt: skip
        if value is not None:
            clauses.append(clause)
            params.append(value)
    if chargers is not None:
        clauses.append(f"charger IN ({', '.join('?' for _ in chargers)})")
        params.extend(chargers)
    return ("WHERE " + " AND ".join(clauses)) if clauses else "", params
