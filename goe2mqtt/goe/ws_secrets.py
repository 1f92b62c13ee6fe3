"""A websocket link's secrets: the password, the token, and the password's hashes.

What a peer says may echo any of them (an authError quoting the password): it is
masked before it becomes a reason, a log line or a topic. The hashes are kept for
reconnects, bounded: a peer may name a new serial on every connection.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from goe2mqtt.goe.ws_protocol import HashKind
from goe2mqtt.util.logs import SecretRedactor
from goe2mqtt.util.text import printable

MAX_HASHES = 2  # a charger names one serial: pbkdf2 or bcrypt


class LinkSecrets:
    def __init__(self, secrets: Iterable[str]) -> None:
        self._secrets = [s for s in secrets if s]
        self._hashes: dict[tuple[str, HashKind], bytes] = {}  # (serial, kind): oldest first
        self._redactor = SecretRedactor(self._secrets)

    def hashed(self, serial: str, kind: HashKind) -> bytes | None:
        return self._hashes.get((serial, kind))

    def keep(self, serial: str, kind: HashKind, hashed: bytes) -> None:
        self._hashes[(serial, kind)] = hashed
        while len(self._hashes) > MAX_HASHES:
            del self._hashes[next(iter(self._hashes))]
        hashes = (value.decode() for value in self._hashes.values())
        self._redactor = SecretRedactor([*self._secrets, *hashes])

    def redact(self, text: str) -> str:
        return self._redactor.redact(text)

    def peer_text(self, value: Any, limit: int = 120) -> str:
        """A charger's words, for a reason, a log line or a topic: its secrets masked
        (before the cut: a cut secret would not be found), printable, bounded."""
        if not isinstance(value, str):
            return "no reason given"
        return printable(self.redact(value)[:limit])

    def __len__(self) -> int:
        """How many secrets are masked (bounded: the configured ones and MAX_HASHES)."""
        return len(self._redactor.secrets)
