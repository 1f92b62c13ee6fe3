"""The derived keys kept across restarts (goe/ws_keys): bound to the password, serial
and parameters that made them, 0600, no password in the file, a bad file ignored."""

from __future__ import annotations

import asyncio
import hashlib
import itertools
import json
import os
import stat
from collections.abc import Iterator
from pathlib import Path

import pytest
import structlog

from goe2mqtt.goe import ws_keys
from goe2mqtt.goe.ws_keys import MAX_PER_CHARGER, DerivedKeys, derive, recall, seal, unlock
from goe2mqtt.goe.ws_protocol import HashKind, hashed_password

PASSWORD = "wallbox-pw-7"
SERIAL = "604705"


@pytest.fixture
def path(tmp_path: Path) -> Path:
    return tmp_path / "state" / "bridge.keys.json"


def kept_and_written(
    path: Path, kind: HashKind = "bcrypt", password: str = PASSWORD, serial: str = SERIAL
) -> bytes:
    """A key hashed, accepted and written as the bridge does (a run of its own); the key."""

    async def run() -> bytes:
        keys = DerivedKeys(path, ["garage"])
        key, entry = derive(password, serial, kind)
        keys.keep("garage", serial, kind, entry)
        await keys.close()
        return key

    return asyncio.run(run())


def closed(keys: DerivedKeys) -> None:
    asyncio.run(keys.close())


def recalled(path: Path, password: str = PASSWORD) -> list[tuple[str, str, bytes]]:
    """What a restart with this password gets from the file without hashing."""
    return list(recall(DerivedKeys(path, ["garage"]).entries("garage"), password))


@pytest.mark.parametrize("kind", ["pbkdf2", "bcrypt"])
def test_a_restart_gets_the_kept_key(path: Path, kind: HashKind) -> None:
    key = kept_and_written(path, kind)
    assert key == hashed_password(PASSWORD, SERIAL, kind)
    assert recalled(path) == [(SERIAL, kind, key)]


def test_a_changed_password_unlocks_nothing(path: Path) -> None:
    kept_and_written(path)
    assert recalled(path, "new-pw") == []
    assert recalled(path) != []


def test_the_key_is_bound_to_its_serial_and_hash(path: Path) -> None:
    kept_and_written(path)
    keys = DerivedKeys(path, ["garage"])
    assert keys.entry("garage", "604706", "bcrypt") is None  # kept by serial
    entry = keys.entry("garage", SERIAL, "bcrypt")
    assert entry is not None
    # An entry offered for another serial or hash does not unlock.
    assert unlock(entry, PASSWORD, "604706", "bcrypt") is None
    assert unlock(entry, PASSWORD, SERIAL, "pbkdf2") is None
    assert unlock(entry, PASSWORD, SERIAL, "bcrypt") is not None


def test_changed_parameters_unlock_nothing(path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    kept_and_written(path, "pbkdf2")
    monkeypatch.setattr(ws_keys, "PBKDF2_ROUNDS", 200_000)  # a protocol fix, say
    assert recalled(path) == []


def test_an_edited_key_salt_or_check_does_not_unlock() -> None:
    entry = seal(PASSWORD, SERIAL, "bcrypt", hashed_password(PASSWORD, SERIAL, "bcrypt"))
    assert unlock(entry, PASSWORD, SERIAL, "bcrypt") is not None
    flipped = "A" if entry["key"][0] != "A" else "B"
    for edited in ({"key": flipped + entry["key"][1:]}, {"check": "00" * 32},
                   {"salt": "00" * 16}, {"salt": "not hex"}):  # fmt: skip
        assert unlock({**entry, **edited}, PASSWORD, SERIAL, "bcrypt") is None


@pytest.fixture
def open_umask() -> Iterator[None]:
    old = os.umask(0)  # files would be 0666 if the code left the mode to the umask
    yield
    os.umask(old)


def test_the_file_is_0600_and_holds_no_password(path: Path, open_umask: None) -> None:
    key = kept_and_written(path)
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    text = path.read_text()
    sha = hashlib.sha256(PASSWORD.encode()).hexdigest()  # what bcrypt is given
    for secret in (PASSWORD, sha, sha.upper()):
        assert secret not in text
    assert key.decode() in text  # what it keeps: the key, password-equivalent for this charger
    stored = json.loads(text)["chargers"]["garage"][SERIAL]["bcrypt"]
    assert set(stored) == {"key", "salt", "check"}


def test_a_file_others_can_read_is_made_0600(path: Path) -> None:
    kept_and_written(path)
    path.chmod(0o644)
    with structlog.testing.capture_logs() as logs:
        keys = DerivedKeys(path, ["garage"])
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert [e["event"] for e in logs] == ["derived_keys_readable_by_others"]
    assert keys.entry("garage", SERIAL, "bcrypt") is not None


@pytest.mark.parametrize(
    "contents",
    ['{"format": "goe2mqtt derived keys 1", "chargers": {"garage": ', "\x00\xff", "[1, 2]",
     '{"format": "something else", "chargers": {}}'],
)  # fmt: skip
def test_a_corrupt_file_is_ignored_with_a_warning_and_replaced(path: Path, contents: str) -> None:
    path.parent.mkdir(parents=True)
    path.write_bytes(contents.encode("utf-8", "surrogateescape"))
    path.chmod(0o600)
    with structlog.testing.capture_logs() as logs:
        keys = DerivedKeys(path, ["garage"])
    assert [e["event"] for e in logs] == ["derived_keys_unreadable"]
    assert keys.entries("garage") == []
    key = kept_and_written(path)  # the next write replaces it
    assert recalled(path) == [(SERIAL, "bcrypt", key)]


def test_a_bad_entry_is_skipped_and_the_others_kept(path: Path) -> None:
    kept_and_written(path)
    data = json.loads(path.read_text())
    data["chargers"]["garage"]["604706"] = {"bcrypt": {"key": 5}, "pbkdf2": "x"}
    path.write_text(json.dumps(data))
    keys = DerivedKeys(path, ["garage"])
    assert [serial for serial, _, _ in keys.entries("garage")] == [SERIAL]


def test_only_configured_chargers_and_two_keys_each_are_kept(path: Path) -> None:
    kept_and_written(path)
    keys = DerivedKeys(path, ["carport"])  # the garage left the config
    assert keys.entries("garage") == []

    async def peer_naming_new_serials() -> None:
        for serial in ("100001", "100002", "100003"):
            keys.keep("carport", serial, "bcrypt", derive(PASSWORD, serial, "bcrypt")[1])
        await keys.close()

    asyncio.run(peer_naming_new_serials())
    chargers = json.loads(path.read_text())["chargers"]
    assert list(chargers) == ["carport"]
    assert list(chargers["carport"]) == ["100002", "100003"]  # the newest MAX_PER_CHARGER
    assert MAX_PER_CHARGER == 2


def test_a_refused_key_is_forgotten(path: Path) -> None:
    kept_and_written(path)
    keys = DerivedKeys(path, ["garage"])
    keys.forget("garage", SERIAL, "bcrypt")
    closed(keys)
    assert recalled(path) == []


async def test_keys_accepted_together_are_written_once(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(ws_keys, "SAVE_DELAY", 0.01)
    names = [f"ws{n}" for n in range(50)]
    keys = DerivedKeys(tmp_path / "keys.json", names)
    writes: list[str] = []
    written = asyncio.Event()
    loop = asyncio.get_running_loop()
    real = keys._write

    def counted(text: str) -> None:  # in a thread
        real(text)
        writes.append(text)
        loop.call_soon_threadsafe(written.set)

    monkeypatch.setattr(keys, "_write", counted)
    entry = derive(PASSWORD, SERIAL, "bcrypt")[1]
    for name in names:
        keys.keep(name, SERIAL, "bcrypt", entry)
    await written.wait()
    await keys.close()
    assert len(writes) == 1
    assert set(json.loads(writes[0])["chargers"]) == set(names)


def test_a_file_that_cannot_be_written_costs_the_cache_not_the_bridge(tmp_path: Path) -> None:
    blocked = tmp_path / "keys.json"
    (tmp_path / "keys.json.tmp").mkdir()  # the temporary file cannot be made
    (tmp_path / "keys.json.tmp" / "x").write_text("")

    async def run() -> None:
        keys = DerivedKeys(blocked, ["garage"])
        keys.keep("garage", SERIAL, "bcrypt", derive(PASSWORD, SERIAL, "bcrypt")[1])
        await keys.close()

    with structlog.testing.capture_logs() as logs:
        asyncio.run(run())
    assert [e["event"] for e in logs] == ["derived_keys_not_saved"]
    assert not blocked.exists()


async def test_connects_take_turns_at_the_connect_rate(monkeypatch: pytest.MonkeyPatch) -> None:
    """(goe/ws_pace) A fleet's connects are spread: of five at once the first goes now,
    each other a turn (1/CONNECT_RATE) after the one before; turns past are not waited for."""
    from goe2mqtt.goe import ws_pace

    monkeypatch.setattr(ws_pace, "CONNECT_RATE", 200.0)
    loop = asyncio.get_running_loop()
    waits = [ws_pace.take_turn(loop) for _ in range(5)]
    assert waits[0] == 0
    assert waits[1] > 0
    assert all(a < b <= a + 1 / 200 for a, b in itertools.pairwise(waits[1:]))
    assert waits[-1] <= 4 / 200
    await ws_pace.connect_turn()  # waits for its turn (the sixth)
    assert ws_pace.take_turn(loop) <= 1 / 200  # the turns before are past


def test_a_key_hashed_anew_is_sealed_when_written_and_shows_no_secret(path: Path) -> None:
    key, unsealed = derive(PASSWORD, SERIAL, "bcrypt")
    assert isinstance(unsealed, ws_keys.Unsealed)  # the check's CPU not spent yet
    shown = repr(unsealed)
    assert PASSWORD not in shown
    assert key.decode() not in shown
    keys = DerivedKeys(path, ["garage"])
    keys.keep("garage", SERIAL, "bcrypt", unsealed)
    entry = keys.entry("garage", SERIAL, "bcrypt")  # sealed when asked, as when written
    assert entry is not None
    assert unlock(entry, PASSWORD, SERIAL, "bcrypt") == key


def watch_writes(keys: DerivedKeys, monkeypatch: pytest.MonkeyPatch) -> asyncio.Event:
    """Set once the file was written (from the writing thread)."""
    written, loop, real = asyncio.Event(), asyncio.get_running_loop(), keys._write

    def write(text: str) -> None:
        real(text)
        loop.call_soon_threadsafe(written.set)

    monkeypatch.setattr(keys, "_write", write)
    return written


async def test_a_write_waits_while_hashes_wait(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A first start: the checks (their CPU) come after the fleet's hashes."""
    monkeypatch.setattr(ws_keys, "SAVE_DELAY", 0.01)
    busy = True
    asked = asyncio.Event()

    def hashes_waiting() -> bool:
        asked.set()
        return busy

    path = tmp_path / "keys.json"
    keys = DerivedKeys(path, ["garage"], busy=hashes_waiting)
    written = watch_writes(keys, monkeypatch)
    keys.keep("garage", SERIAL, "bcrypt", derive(PASSWORD, SERIAL, "bcrypt")[1])
    for _ in range(3):  # the write looked three times, and waited
        asked.clear()
        await asked.wait()
    assert not path.exists()
    busy = False
    await written.wait()
    await keys.close()
    assert recalled(path) == [(SERIAL, "bcrypt", hashed_password(PASSWORD, SERIAL, "bcrypt"))]


async def test_a_write_waits_for_hashes_within_a_bound(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(ws_keys, "SAVE_DELAY", 0.01)
    monkeypatch.setattr(ws_keys, "SAVE_POSTPONED_AT_MOST", 0.05)
    path = tmp_path / "keys.json"
    keys = DerivedKeys(path, ["garage"], busy=lambda: True)  # hashes for ever
    written = watch_writes(keys, monkeypatch)
    keys.keep("garage", SERIAL, "bcrypt", derive(PASSWORD, SERIAL, "bcrypt")[1])
    await written.wait()  # not at close(): within the bound
    await keys.close()
    assert [serial for serial, _, _ in recalled(path)] == [SERIAL]
