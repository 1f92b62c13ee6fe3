"""state_dir, made by the bridge, is its user's only (0700), whatever the umask; a
directory that exists keeps the mode its owner gave it. The files in it were 0600
already, but a 0755 directory showed everyone their names (a client id, which chargers
keep derived keys), and the journal's lock file was made with the umask."""

from __future__ import annotations

import os
import stat
from collections.abc import Iterator
from pathlib import Path

import pytest

from goe2mqtt.commands.journal import Journal
from goe2mqtt.goe.ws_keys import DerivedKeys
from goe2mqtt.ledger.store import SessionStore
from goe2mqtt.util.state_file import JsonStateFile


@pytest.fixture(autouse=True)
def open_umask() -> Iterator[None]:
    old = os.umask(0o022)  # a service's usual umask
    yield
    os.umask(old)


def mode(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


def test_every_state_file_makes_its_missing_directories_private(tmp_path: Path) -> None:
    journal = Journal(tmp_path / "a" / "state" / "bridge.journal.db")
    journal.close()
    store = SessionStore(tmp_path / "b" / "state" / "bridge.ledger.db")
    store.close()
    JsonStateFile(tmp_path / "c" / "state" / "bridge.sites.json", "sites", event="x").save({})
    keys = DerivedKeys(tmp_path / "d" / "state" / "bridge.keys.json", [])
    keys._write("{}")
    for made in "abcd":
        assert mode(tmp_path / made) == 0o700, made  # a missing parent too
        assert mode(tmp_path / made / "state") == 0o700, made
    assert mode(tmp_path / "a" / "state" / "bridge.journal.db.lock") == 0o600


def test_a_directory_that_exists_keeps_its_mode_and_the_lock_its_content(
    tmp_path: Path,
) -> None:
    shared = tmp_path / "state"
    shared.mkdir(mode=0o750)
    os.chmod(shared, 0o750)  # a service group's, chosen by its owner
    journal = Journal(shared / "bridge.journal.db")
    journal.close()
    journal = Journal(shared / "bridge.journal.db")  # the lock taken again: one pid in it
    journal.close()
    assert mode(shared) == 0o750
    assert (shared / "bridge.journal.db.lock").read_text() == f"{os.getpid()}\n"
