"""The command journal on its own: states, redeliveries, one process per file."""

from __future__ import annotations

import multiprocessing
import os
import signal
import time
from pathlib import Path

import pytest

from goe2mqtt.commands.journal import DONE, PUBLISHED, QUEUED, RUNNING, Journal, JournalLocked


def test_a_command_goes_queued_running_done_published(tmp_path: Path) -> None:
    journal = Journal(tmp_path / "j")
    seq = journal.record("garage", "set_phase", b"1", retained=False, received=1.0, mid=7)
    assert seq is not None
    assert [e.payload for e in journal.entries(QUEUED)] == [b"1"]
    journal.start(seq, [{"psm": 1}])
    (running,) = journal.entries(RUNNING)
    assert running.sent == [{"psm": 1}]
    journal.finish(seq, {"service": "set_phase", "ok": True})
    assert journal.entries(DONE)[0].result == {"service": "set_phase", "ok": True}
    journal.published(seq)
    assert journal.count() == {PUBLISHED: 1}
    assert journal.prune(before=2.0) == 1
    assert journal.count() == {}
    journal.close()


def test_a_redelivery_of_a_journaled_command_is_recognised(tmp_path: Path) -> None:
    journal = Journal(tmp_path / "j")
    first = journal.record("garage", "stop_charging", b"", retained=False, received=1.0, mid=3)
    assert first is not None
    # The PUBACK never left (crash): the broker sends it again, DUP set, same packet id.
    again = journal.record(
        "garage", "stop_charging", b"", retained=False, received=2.0, mid=3, dup=True
    )
    assert again is None
    # Even after the first has finished and its result is out.
    journal.finish(first, {"ok": True})
    journal.published(first)
    assert journal.record("garage", "stop_charging", b"", retained=False, received=3.0, mid=3,
                          dup=True) is None  # fmt: skip


def test_a_reused_packet_id_is_a_new_command(tmp_path: Path) -> None:
    """The broker reuses a packet id only after our PUBACK: the same button pressed twice."""
    journal = Journal(tmp_path / "j")
    journal.record("garage", "stop_charging", b"", retained=False, received=1.0, mid=3)
    second = journal.record("garage", "stop_charging", b"", retained=False, received=2.0, mid=3)
    assert second is not None
    # A DUP of the second is recognised; a DUP can no longer match the first.
    assert journal.record("garage", "stop_charging", b"", retained=False, received=3.0, mid=3,
                          dup=True) is None  # fmt: skip
    assert len(journal.entries(QUEUED)) == 2


def test_a_dup_that_differs_is_a_new_command(tmp_path: Path) -> None:
    journal = Journal(tmp_path / "j")
    journal.record("garage", "set_phase", b"1", retained=False, received=1.0, mid=3)
    other = journal.record("garage", "set_phase", b"2", retained=False, received=2.0, mid=3,
                           dup=True)  # fmt: skip
    assert other is not None


def test_one_process_per_journal(tmp_path: Path) -> None:
    journal = Journal(tmp_path / "j")
    with pytest.raises(JournalLocked, match="in use by another goe2mqtt process"):
        Journal(tmp_path / "j")
    journal.close()
    Journal(tmp_path / "j").close()  # free again once closed


def test_the_journal_file_is_private(tmp_path: Path) -> None:
    Journal(tmp_path / "j").close()
    assert (tmp_path / "j").stat().st_mode & 0o077 == 0


def _record_then_die(path: str, ready: multiprocessing.synchronize.Event) -> None:
    journal = Journal(Path(path))
    journal.record("garage", "set_phase", b"1", retained=False, received=time.time(), mid=1)
    ready.set()
    time.sleep(60)


def test_what_was_recorded_survives_kill_9(tmp_path: Path) -> None:
    ready = multiprocessing.get_context("fork").Event()
    process = multiprocessing.get_context("fork").Process(
        target=_record_then_die, args=(str(tmp_path / "j"), ready)
    )
    process.start()
    assert ready.wait(10)
    assert process.pid is not None
    os.kill(process.pid, signal.SIGKILL)
    process.join(10)
    journal = Journal(tmp_path / "j")  # the lock died with the process
    assert [e.payload for e in journal.entries(QUEUED)] == [b"1"]
