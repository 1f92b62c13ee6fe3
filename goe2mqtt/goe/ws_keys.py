"""The chargers' derived keys, kept across restarts: {state_dir}/{client_id}.keys.json.

A websocket charger asks for its password hashed: PBKDF2 (100 000 rounds of SHA-512,
~0.2-0.35 s of CPU) or bcrypt (~15 ms). What that yields from (password, serial) - the
derived key - is all the protocol uses: the auth proof and the HMAC of every write.
Kept here, a restart authenticates without hashing again.

What the file holds, per configured charger (its name), per serial and hash:

- ``key``: the derived key as the protocol uses it (ASCII: 32 characters of base64 for
  PBKDF2, 31 of bcrypt's base64 for bcrypt). It is password-equivalent for that one
  charger (it authenticates and signs writes as the password would) and for nothing
  else: another serial salts another key.
- ``salt`` (16 random bytes, new for every entry) and ``check``: PBKDF2-HMAC-SHA256 of
  the password, salted with that salt, the serial, the hash, its parameters and the
  key (CHECK_ROUNDS). A key is used only when the configured password, the serial the
  charger names and today's parameters give the same check: a changed password, serial
  or parameter (or an edited key) hashes anew. The password itself is not in the file,
  and the check is slow on purpose: a guess tested against it costs ~1/40 of one
  tested against the key, not a single SHA-256.

Only keys a charger accepted are written (authSuccess), at most MAX_PER_CHARGER per
charger, and only for chargers configured now: a removed or renamed charger's keys go
at the next write. The file is created 0600 and replaced atomically (written beside,
fsynced, renamed); writes are gathered (SAVE_DELAY) so a fleet's first start writes it
a few times, not once per charger. A file that cannot be read is ignored with a
warning (the keys are derived again), one that cannot be written costs the cache,
never the bridge. The CPU work runs in threads: ``recall`` and ``derive`` are plain
functions for the caller's hashing threads; a key's check is computed when the file
is written, in the writing thread, and a write waits while hashes wait (``busy``, at
most SAVE_POSTPONED_AT_MOST): a first start's checks (~5 CPU-s for 10 000 bcrypt
keys) come after its hashes, not between them. A key not yet written is hashed anew
after a crash, as before it was accepted.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import hmac
import json
import os
import secrets
import stat
from collections.abc import Callable, Iterable, Mapping
from pathlib import Path
from typing import Any

import structlog

from goe2mqtt.goe.ws_protocol import (
    PBKDF2_BYTES,
    PBKDF2_ROUNDS,
    HashKind,
    bcrypt_salt,
    hashed_password,
)
from goe2mqtt.util.state_file import private_dir

log = structlog.get_logger()

FORMAT = "goe2mqtt derived keys 1"
# The check's PBKDF2-SHA256 rounds: about 1/40 of what the hash it stands for costs
# (PBKDF2 ~0.2 s, bcrypt ~15 ms on the bench VM): ~5 ms and ~0.5 ms. A restart of 1000
# PBKDF2 or 10 000 bcrypt chargers checks for ~5 s of CPU instead of hashing for minutes;
# a guess at the password tested against the file costs that much too.
CHECK_ROUNDS: dict[HashKind, int] = {"pbkdf2": 20_000, "bcrypt": 2_000}
MAX_PER_CHARGER = 2  # as the link keeps in memory: a charger names one serial
SAVE_DELAY = 5.0  # s: keys accepted meanwhile go out in one write
SAVE_POSTPONED_AT_MOST = 300.0  # s: a write waits this long at most for hashes to end
_MAX_KEY = 64  # characters: PBKDF2's are 32, bcrypt's 31

Entry = dict[str, str]  # key, salt, check


class Unsealed:
    """A key hashed anew, its entry not yet made: sealed when the file is written."""

    __slots__ = ("_password", "key", "kind", "serial")

    def __init__(self, password: str, serial: str, kind: HashKind, key: bytes) -> None:
        self._password, self.serial, self.kind, self.key = password, serial, kind, key

    def seal(self) -> Entry:
        return seal(self._password, self.serial, self.kind, self.key)

    def __repr__(self) -> str:  # never the password or the key
        return f"Unsealed({self.serial!r}, {self.kind!r})"


_Kept = Entry | Unsealed
_Snapshot = list[tuple[str, list[tuple[tuple[str, HashKind], _Kept]]]]
_Sealed = list[tuple[str, tuple[str, HashKind], Unsealed, Entry]]


def _parameters(serial: str, kind: HashKind) -> str:
    """What else made the key: a change here (a protocol fix) makes every check fail."""
    if kind == "bcrypt":
        return f"bcrypt {bcrypt_salt(serial).decode()} sha256-hex"
    return f"pbkdf2 sha512 {PBKDF2_ROUNDS} {PBKDF2_BYTES} base64[:32]"


def _check(password: str, serial: str, kind: HashKind, key: str, salt: bytes) -> str:
    bound = b"\0".join(
        [FORMAT.encode(), salt, serial.encode(), kind.encode(),
         _parameters(serial, kind).encode(), key.encode()]
    )  # fmt: skip
    return hashlib.pbkdf2_hmac("sha256", password.encode(), bound, CHECK_ROUNDS[kind]).hex()


def seal(password: str, serial: str, kind: HashKind, key: bytes) -> Entry:
    """The entry that keeps ``key``, bound to what made it."""
    text, salt = key.decode("ascii"), secrets.token_bytes(16)
    return {"key": text, "salt": salt.hex(),
            "check": _check(password, serial, kind, text, salt)}  # fmt: skip


def unlock(entry: Mapping[str, str], password: str, serial: str, kind: HashKind) -> bytes | None:
    """The entry's key if this password, serial and hash made it; None otherwise."""
    try:
        salt = bytes.fromhex(entry["salt"])
    except (KeyError, ValueError):
        return None
    key = entry.get("key", "")
    expected = _check(password, serial, kind, key, salt)
    return key.encode("ascii") if hmac.compare_digest(expected, entry.get("check", "")) else None


def derive(password: str, serial: str, kind: HashKind) -> tuple[bytes, Unsealed]:
    """The key hashed anew, and what keeps it once the charger accepts it (sealed when
    written). For the hashing threads."""
    key = hashed_password(password, serial, kind)
    return key, Unsealed(password, serial, kind, key)


def recall(
    entries: Iterable[tuple[str, HashKind, Entry]], password: str
) -> list[tuple[str, HashKind, bytes]]:
    """The kept keys this password unlocks, each with its serial and hash. For the
    hashing threads (~5 ms for a PBKDF2 key, ~0.5 ms for a bcrypt one)."""
    keys = (
        (serial, kind, unlock(entry, password, serial, kind)) for serial, kind, entry in entries
    )
    return [(serial, kind, key) for serial, kind, key in keys if key is not None]


def _entry(value: Any) -> Entry | None:
    """A stored entry of the right shape (what it is bound to is unlock()'s to say)."""
    if not isinstance(value, dict):
        return None
    fields = [value.get(k) for k in ("key", "salt", "check")]
    if not all(isinstance(f, str) and f.isascii() and 0 < len(f) <= 2 * _MAX_KEY for f in fields):
        return None
    return {"key": value["key"], "salt": value["salt"], "check": value["check"]}


class DerivedKeys:
    """The derived keys of the configured chargers, kept in ``path``."""

    def __init__(
        self, path: Path, chargers: Iterable[str], *, busy: Callable[[], bool] = lambda: False
    ) -> None:
        self.path = path
        self._chargers: dict[str, dict[tuple[str, HashKind], _Kept]] = {}
        self._busy = busy  # hashes wait: a write (its checks' CPU) waits for them
        self._dirty = False
        self._dirty_since: float | None = None  # loop time of the oldest unwritten change
        self._write_failed = False
        self._timer: asyncio.TimerHandle | None = None
        self._saving: asyncio.Task[None] | None = None
        self.recalled = 0  # keys used from the file this run
        self.derived = 0  # keys hashed anew and accepted this run
        self._load(set(chargers))

    def _load(self, configured: set[str]) -> None:
        try:
            mode = self.path.stat().st_mode
            loaded = json.loads(self.path.read_text(encoding="utf-8"))
        except FileNotFoundError:
            return
        except (OSError, ValueError, RecursionError) as exc:
            log.warning("derived_keys_unreadable", file=str(self.path), reason=str(exc)[:200])
            return
        if stat.S_IMODE(mode) & 0o077:
            log.warning("derived_keys_readable_by_others", file=str(self.path),
                        mode=oct(stat.S_IMODE(mode)), fix="made 0600")  # fmt: skip
            with contextlib.suppress(OSError):
                self.path.chmod(0o600)
        if not isinstance(loaded, dict) or loaded.get("format") != FORMAT:
            log.warning("derived_keys_unreadable", file=str(self.path),
                        reason="not a derived keys file of this version")  # fmt: skip
            self._dirty = True  # rewritten at the next save
            return
        chargers = loaded.get("chargers")
        for name, serials in chargers.items() if isinstance(chargers, dict) else ():
            if name not in configured or not isinstance(serials, dict):
                self._dirty = True  # a charger no longer configured: its keys go
                continue
            kept: dict[tuple[str, HashKind], _Kept] = {}
            for serial, kinds in serials.items():
                for kind in ("pbkdf2", "bcrypt"):
                    entry = _entry(kinds.get(kind)) if isinstance(kinds, dict) else None
                    if entry is not None and len(kept) < MAX_PER_CHARGER:
                        kept[(serial, kind)] = entry
            self._chargers[name] = kept

    def entry(self, charger: str, serial: str, kind: HashKind) -> Entry | None:
        kept = self._chargers.get(charger, {}).get((serial, kind))
        return kept.seal() if isinstance(kept, Unsealed) else kept

    def entries(self, charger: str) -> list[tuple[str, HashKind, Entry]]:
        """The charger's kept entries (at most MAX_PER_CHARGER), for recall()."""
        return [
            (serial, kind, entry.seal() if isinstance(entry, Unsealed) else entry)
            for (serial, kind), entry in self._chargers.get(charger, {}).items()
        ]

    def keep(self, charger: str, serial: str, kind: HashKind, entry: _Kept) -> None:
        """A derived key the charger accepted: written within SAVE_DELAY, or once no
        hash waits (at most SAVE_POSTPONED_AT_MOST)."""
        kept = self._chargers.setdefault(charger, {})
        kept.pop((serial, kind), None)
        kept[(serial, kind)] = entry
        while len(kept) > MAX_PER_CHARGER:
            del kept[next(iter(kept))]  # the oldest
        self.derived += 1
        self._changed()

    def forget(self, charger: str, serial: str, kind: HashKind) -> None:
        """The charger refused the kept key: it is not kept any longer."""
        if self._chargers.get(charger, {}).pop((serial, kind), None) is not None:
            self._changed()

    def _changed(self) -> None:
        self._dirty = True
        if self._timer is None and self._saving is None:
            try:
                loop = asyncio.get_running_loop()
            except RuntimeError:
                return  # no loop: close() writes it
            if self._dirty_since is None:
                self._dirty_since = loop.time()
            self._timer = loop.call_later(SAVE_DELAY, self._save_soon)

    def _save_soon(self) -> None:
        loop = asyncio.get_running_loop()
        since = loop.time() if self._dirty_since is None else self._dirty_since
        if self._busy() and loop.time() < since + SAVE_POSTPONED_AT_MOST:
            self._timer = loop.call_later(SAVE_DELAY, self._save_soon)
            return
        self._timer = None
        self._saving = asyncio.ensure_future(self._save_in_thread())

    async def _save_in_thread(self) -> None:
        try:
            self._replace(await asyncio.to_thread(self._save, self._snapshot()))
        finally:
            self._saving = None
            if self._dirty:  # more came while it was written
                self._changed()

    def _snapshot(self) -> _Snapshot:
        """What to write, taken on the loop (entries are never changed, only replaced):
        the checks and the JSON are made in the thread - 10 000 chargers' JSON took
        ~0.1-0.3 s, their bcrypt keys' checks ~5 s."""
        self._dirty, self._dirty_since = False, None
        return [(name, list(kept.items())) for name, kept in self._chargers.items()]

    def _save(self, snapshot: _Snapshot) -> _Sealed:
        """Write the file (in a thread); the entries it sealed for that."""
        chargers: dict[str, dict[str, dict[str, Entry]]] = {}
        sealed: _Sealed = []
        for name, kept in snapshot:
            for (serial, kind), entry in kept:
                if isinstance(entry, Unsealed):
                    sealed.append((name, (serial, kind), entry, entry.seal()))
                    entry = sealed[-1][3]
                chargers.setdefault(name, {}).setdefault(serial, {})[kind] = entry
        self._write(json.dumps({"format": FORMAT, "chargers": chargers}, separators=(",", ":")))
        return sealed

    def _replace(self, sealed: _Sealed) -> None:
        """On the loop: the entries sealed for a write replace their keys, unless another
        key took the place meanwhile."""
        for name, place, unsealed, entry in sealed:
            kept = self._chargers.get(name)
            if kept is not None and kept.get(place) is unsealed:
                kept[place] = entry

    def _write(self, text: str) -> None:
        temporary = self.path.with_name(self.path.name + ".tmp")
        try:
            private_dir(self.path.parent)
            with contextlib.suppress(FileNotFoundError):
                temporary.unlink()  # an earlier one may have another owner or mode
            fd = os.open(temporary, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
            with os.fdopen(fd, "w", encoding="utf-8") as file:
                os.fchmod(file.fileno(), 0o600)  # whatever the umask
                file.write(text)
                file.flush()
                os.fsync(file.fileno())
            os.replace(temporary, self.path)
        except OSError as exc:
            if not self._write_failed:
                log.warning("derived_keys_not_saved", file=str(self.path), reason=str(exc))
            self._write_failed = True
            return
        self._write_failed = False

    async def close(self) -> None:
        """Write what waits (at the bridge's stop)."""
        if self._saving is not None:
            await asyncio.shield(self._saving)
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None
        if self._dirty:
            self._replace(await asyncio.to_thread(self._save, self._snapshot()))
