"""One websocket connection's way in: the charger's hello and the auth steps.

The hello names the charger (one naming a serial other than the configured one is
refused) and says whether writes are secured. authRequired is answered with the
derived key (LinkAuth's: remembered, kept or hashed anew), at most MAX_AUTH_ROUNDS
times a connection; authError is a wrong password, authSuccess keeps the key. What a
link's writes sign with, and why it is not live yet, are read from here.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import structlog

from goe2mqtt.goe.transport import GoeError
from goe2mqtt.goe.ws_auth import LinkAuth
from goe2mqtt.goe.ws_protocol import (
    HashKind,
    ProtocolError,
    auth_message,
    checked_hello,
    encode,
    hash_kind,
    hello_serial,
)
from goe2mqtt.goe.ws_secrets import LinkSecrets

log = structlog.get_logger()

MAX_AUTH_ROUNDS = 3  # authRequired again and again: a loop, not a charger


class WrongPassword(GoeError):
    """The charger said authError: the configured password is not its password."""


class LinkLogin:
    """The hello and the auth steps of the link's connection (reset for each)."""

    def __init__(
        self, auth: LinkAuth, secrets: LinkSecrets, serial: str | None, *, charger: str
    ) -> None:
        self._auth = auth
        self._secrets = secrets
        self._serial = serial  # configured: a hello naming another is refused
        self._charger = charger
        self.hello: dict[str, Any] = {}
        self._hello_to_hash: dict[str, str] = {}
        self._rounds = 0
        self.hashed: bytes | None = None  # this connection's, for secured writes
        self.secured = False

    def reset(self) -> None:
        """A new connection: nothing said yet."""
        self.hello, self._hello_to_hash, self._rounds = {}, {}, 0
        self.hashed, self.secured = None, False

    def said_hello(self, message: Mapping[str, Any]) -> None:
        self.hello = checked_hello(message, self._serial, self._secrets.peer_text)
        self.secured = message.get("secured") is True
        # What hashing needs, the peer's own words (a cleaned serial would salt
        # another hash; one past 32 is refused all the same); not the frame.
        self._hello_to_hash = {k: v[:64] for k in ("serial", "devicetype")
                               if isinstance(v := message.get(k), str)}  # fmt: skip

    def asked(self, auth_required: Mapping[str, Any]) -> tuple[str, HashKind]:
        """authRequired: the serial and the hash its key is derived with."""
        self._rounds += 1
        if self._rounds > MAX_AUTH_ROUNDS:
            raise ProtocolError("the charger asks for auth again and again")
        serial = hello_serial(self._hello_to_hash)  # ProtocolError for none, or one no charger has
        return serial, hash_kind(auth_required, self._hello_to_hash)

    def answer(self, auth_required: Mapping[str, Any], hashed: bytes) -> str:
        """The frame that answers authRequired with this key."""
        self.hashed = hashed
        return encode(auth_message(auth_required, hashed))

    def refused(self, auth_error: Mapping[str, Any]) -> WrongPassword:
        """authError: what the link raises."""
        said = self._secrets.peer_text(auth_error.get("message"))
        self._auth.refused()
        return WrongPassword(f"wrong password: the charger refused it ({said})")

    def accepted(self) -> None:
        """authSuccess."""
        self._auth.accepted()
        log.debug("websocket_authenticated", charger=self._charger)

    def why_not_live(self) -> str:
        """The step the connection has not reached, the full status aside."""
        if not self.hello:
            return "no hello"
        if self.secured and self.hashed is None:
            return "no authRequired"
        return "no full status"
