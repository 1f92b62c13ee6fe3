"""A websocket link's derived key: from the link's memory, from the kept file
(ws_keys), or hashed anew in threads of their own.

Hashing has threads of its own: on the default executor a fleet's hashes queued
aiohttp's DNS lookups and the broker's connect behind them. pbkdf2_hmac and bcrypt
release the GIL: two threads use two cores, and leave the event loop its share.

The kept keys are unlocked before the first connect, so a restart answers
authRequired at once. A key hashed anew is written to the file only once the charger
accepted it; one from the file that the charger refuses is dropped from it.
"""

from __future__ import annotations

import asyncio
import os
from concurrent.futures import ThreadPoolExecutor

from goe2mqtt.goe.ws_keys import DerivedKeys, Unsealed, derive, recall
from goe2mqtt.goe.ws_protocol import HashKind
from goe2mqtt.goe.ws_secrets import LinkSecrets

HASH_THREADS = min(2, os.cpu_count() or 1)
hashing = ThreadPoolExecutor(max_workers=HASH_THREADS, thread_name_prefix="goe2mqtt-hash")
_hashes_waiting = 0  # hashed anew, queued or running: the kept keys' writes wait for them


def hashes_waiting() -> bool:
    """Whether a key is being hashed anew or waits for a hashing thread (DerivedKeys's
    ``busy``: a first start's checks come after its hashes)."""
    return _hashes_waiting > 0


class LinkAuth:
    def __init__(
        self,
        password: str,
        secrets: LinkSecrets,
        keys: DerivedKeys | None,
        *,
        charger: str,
    ) -> None:
        self._password = password
        self._secrets = secrets
        self._keys = keys
        self._charger = charger
        self._looked = keys is None  # the kept keys were unlocked (or there are none)
        # Keys not yet accepted by the charger: the key to keep, or None (from the file).
        self._pending: dict[tuple[str, HashKind], Unsealed | None] = {}
        self._from_file: set[tuple[str, HashKind]] = set()
        self._using: tuple[str, HashKind] | None = None

    async def before_connect(self) -> None:
        """Unlock the kept keys (once, in the hashing threads: ~5 ms for PBKDF2's)."""
        if self._looked or self._keys is None:
            return
        self._looked = True
        entries = self._keys.entries(self._charger)
        if entries:
            found = await asyncio.get_running_loop().run_in_executor(
                hashing, recall, entries, self._password
            )
            for serial, kind, key in found:
                self._secrets.keep(serial, kind, key)
                self._pending[(serial, kind)] = None  # counted once accepted
                self._from_file.add((serial, kind))

    async def key(self, serial: str, kind: HashKind) -> bytes:
        """The derived key for this serial and hash (~0.2-0.35 s of CPU for PBKDF2,
        ~15 ms for bcrypt when hashed anew)."""
        self._using = (serial, kind)
        known = self._secrets.hashed(serial, kind)
        if known is not None:
            return known
        global _hashes_waiting
        _hashes_waiting += 1
        try:
            key, entry = await asyncio.get_running_loop().run_in_executor(
                hashing, derive, self._password, serial, kind
            )
        finally:
            _hashes_waiting -= 1
        self._secrets.keep(serial, kind, key)  # bounded: the oldest go
        if self._keys is not None:
            self._pending[(serial, kind)] = entry
            while len(self._pending) > 2:
                del self._pending[next(iter(self._pending))]
        return key

    def accepted(self) -> None:
        """authSuccess: a key hashed anew is kept in the file."""
        if self._keys is None or self._using not in self._pending:
            return
        entry = self._pending.pop(self._using)
        if entry is None:
            self._keys.recalled += 1
        else:
            self._keys.keep(self._charger, *self._using, entry)

    def refused(self) -> None:
        """authError: a key from the file is not kept any longer (one hashed anew
        from another password leaves the file as it was)."""
        if self._keys is not None and self._using in self._from_file:
            self._from_file.discard(self._using)
            self._pending.pop(self._using, None)
            self._keys.forget(self._charger, *self._using)
