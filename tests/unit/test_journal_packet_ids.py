"""The journal notes the packet id a result leaves under, and when the broker took it (PUBREC)."""

from __future__ import annotations

import sqlite3
from pathlib import Path

from goe2mqtt.commands.journal import DONE, PUBLISHED, Journal

OLD_SCHEMA = """
CREATE TABLE commands (
    seq INTEGER PRIMARY KEY AUTOINCREMENT, charger TEXT NOT NULL, service TEXT NOT NULL,
    payload BLOB NOT NULL, retained INTEGER NOT NULL, received REAL NOT NULL, mid INTEGER,
    state TEXT NOT NULL, sent TEXT, result TEXT
);
INSERT INTO commands (charger, service, payload, retained, received, state, result)
VALUES ('garage', 'stop_charging', X'7B7D', 0, 1.0, 'done', '{"ok": true}');
"""


def test_a_journal_of_the_version_before_gains_the_column_and_keeps_its_results(
    tmp_path: Path,
) -> None:
    path = tmp_path / "old.journal"
    with sqlite3.connect(path) as db:
        db.executescript(OLD_SCHEMA)
    journal = Journal(path)
    (entry,) = journal.entries(DONE)
    assert entry.result == {"ok": True}
    assert entry.packet_id is None
    journal.sending(entry.seq, 17)
    assert (journal.entries(DONE)[0].packet_id, journal.entries(DONE)[0].taken) == (17, False)
    journal.taken(entry.seq, 17)
    assert (journal.entries(DONE)[0].packet_id, journal.entries(DONE)[0].taken) == (17, True)
    journal.close()


def test_only_a_result_still_owed_is_marked(tmp_path: Path) -> None:
    journal = Journal(tmp_path / "j.journal")
    seq = journal.record("garage", "stop_charging", b"{}", retained=False, received=1.0)
    assert seq is not None
    journal.sending(seq, 5)  # no result yet: nothing to mark
    journal.finish(seq, {"ok": True})
    assert journal.entries(DONE)[0].packet_id is None
    journal.taken(seq, 6)
    journal.published(seq)
    journal.sending(seq, 7)  # published: over
    assert journal.entries(PUBLISHED)[0].packet_id == 6
    journal.close()
