"""The go-e websocket protocol, without I/O: password hashes, auth, secured writes, frames.

go-e documents none of it; ../shared/goe-push.md gathers what the community's working
clients (marq24/ha-goecharger-api2, joscha82/wattpilot) do, with sources. The charger
uses the same functions (the simulator) as the bridge, so a test of one checks both.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import re
import secrets
from collections.abc import Callable, Mapping
from typing import Any, Literal

from goe2mqtt.goe.ws_bcrypt import bcrypt_hash
from goe2mqtt.util.values import JsonValue

HashKind = Literal["pbkdf2", "bcrypt"]
PBKDF2_ROUNDS = 100_000
PBKDF2_BYTES = 256
_STANDARD_B64 = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/"
_BCRYPT_B64 = b"./ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789"
_TO_BCRYPT = bytes.maketrans(_STANDARD_B64, _BCRYPT_B64)
# Older firmware leaves "hash" out of authRequired: these device types use bcrypt then.
_BCRYPT_DEVICES = ("phoenix", "core", " pro")
# What a hello's serial may be: the hash salts with it. str.isdigit() takes "²" too,
# and int("²") raises: only ASCII counts.
_SERIAL = re.compile(r"[0-9A-Za-z_-]{1,32}")


class ProtocolError(Exception):
    """A frame that breaks the protocol; the message is safe to log."""


def hash_kind(auth_required: Mapping[str, Any], hello: Mapping[str, Any]) -> HashKind:
    """Which hash the charger asks for; older firmware says nothing: by device type."""
    named = auth_required.get("hash")
    if named in ("pbkdf2", "bcrypt"):
        return "bcrypt" if named == "bcrypt" else "pbkdf2"
    if named is not None:
        raise ProtocolError(f"unknown password hash {str(named)[:32]!r}")
    device = str(hello.get("devicetype", "")).lower()
    return "bcrypt" if any(kind in device for kind in _BCRYPT_DEVICES) else "pbkdf2"


def hello_serial(hello: Mapping[str, Any]) -> str:
    """The serial a hello names, for the password's salt; ProtocolError when it has
    none or one no charger has (ASCII letters, digits, - and _ only)."""
    serial = hello.get("serial")
    if not isinstance(serial, str) or not serial:
        raise ProtocolError("authRequired before a hello with the serial")
    if not _SERIAL.fullmatch(serial):
        raise ProtocolError("the hello's serial is not ASCII digits and letters")
    return serial


def _sha256_hex(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def bcrypt_salt(serial: str) -> bytes:
    """$2a$08$ and 16 bytes - the serial's digit values, zero-padded on the left -
    in bcrypt's own base64 alphabet (22 characters)."""
    digits = [int(c) for c in serial if c in "0123456789"][-16:]
    raw = bytes(16 - len(digits)) + bytes(digits)
    encoded = base64.b64encode(raw).rstrip(b"=").translate(_TO_BCRYPT)
    return b"$2a$08$" + encoded


def hashed_password(password: str, serial: str, kind: HashKind) -> bytes:
    """The charger's form of its password. Costs ~0.1 s of CPU: once per charger, in a
    thread, never per message."""
    if kind == "bcrypt":
        salt = bcrypt_salt(serial)
        return bcrypt_hash(_sha256_hex(password.encode()).encode(), salt)[len(salt) :]
    derived = hashlib.pbkdf2_hmac(
        "sha512", password.encode(), serial.encode(), PBKDF2_ROUNDS, PBKDF2_BYTES
    )
    return base64.b64encode(derived)[:32]


def auth_hash(token1: str, token2: str, token3: str, hashed: bytes) -> str:
    return _sha256_hex((token3 + token2 + _sha256_hex(token1.encode() + hashed)).encode())


def auth_message(auth_required: Mapping[str, Any], hashed: bytes) -> dict[str, str]:
    """The answer to authRequired: a fresh token3 and the proof of the password."""
    token1, token2 = auth_required.get("token1"), auth_required.get("token2")
    if not isinstance(token1, str) or not isinstance(token2, str):
        raise ProtocolError("authRequired without token1/token2")
    token3 = secrets.token_hex(16)
    return {"type": "auth", "token3": token3, "hash": auth_hash(token1, token2, token3, hashed)}


def set_value(request_id: int, key: str, value: JsonValue) -> dict[str, Any]:
    return {"type": "setValue", "requestId": request_id, "key": key, "value": value}


def secured(message: Mapping[str, Any], hashed: bytes) -> dict[str, Any]:
    """A write wrapped with its HMAC: the LAN is plain ws://, the HMAC proves the sender."""
    data = json.dumps(message, separators=(",", ":"), ensure_ascii=False, allow_nan=False)
    return {
        "type": "securedMsg",
        "data": data,
        "requestId": f"{message['requestId']}sm",
        "hmac": hmac.new(hashed, data.encode(), hashlib.sha256).hexdigest(),
    }


def unwrap_secured(message: Mapping[str, Any], hashed: bytes) -> dict[str, Any]:
    """The setValue inside a securedMsg whose HMAC is right (the charger's side)."""
    data, mac = message.get("data"), message.get("hmac")
    if not isinstance(data, str) or not isinstance(mac, str):
        raise ProtocolError("securedMsg without data/hmac")
    expected = hmac.new(hashed, data.encode(), hashlib.sha256).hexdigest()
    if not hmac.compare_digest(expected, mac):
        raise ProtocolError("securedMsg: wrong hmac")
    inner = decode(data)
    if inner is None:
        raise ProtocolError("securedMsg: data is not a JSON object")
    return inner


# The messages a charger sends; only these, well formed, are a sign of life.
MESSAGE_TYPES = frozenset({"hello", "authRequired", "authSuccess", "authError",
                           "fullStatus", "deltaStatus", "response"})  # fmt: skip
# What of a hello the bridge keeps (check-config shows it); the rest is not held.
HELLO_FIELDS = ("serial", "devicetype", "version", "secured", "protocol", "hostname",
                "friendly_name", "manufacturer")  # fmt: skip


def not_a_message(message: Mapping[str, Any] | None) -> str | None:
    """Why a decoded frame is not one of a charger's messages (one reason per kind of
    junk, whatever the peer varies); None when it is one."""
    if message is None:
        return "not a JSON object with a type"
    kind = message["type"]
    if kind not in MESSAGE_TYPES:
        return "unknown message type"
    if kind in ("deltaStatus", "fullStatus") and not isinstance(message.get("status"), dict):
        return f"{kind} without a status object"
    return None


def hello_fields(hello: Mapping[str, Any]) -> dict[str, str | int]:
    """The hello's fields the bridge keeps, as the peer wrote them (texts unbounded)."""
    return {k: v for k in HELLO_FIELDS if isinstance(v := hello.get(k), str | int)}


def checked_hello(
    hello: Mapping[str, Any], configured: str | None, said: Callable[[Any, int], str]
) -> dict[str, Any]:
    """The hello's fields as the bridge keeps them (texts through ``said``: masked,
    printable, bounded); ProtocolError for a serial that is not the configured one."""
    serial = hello.get("serial")
    if configured is not None and serial is not None and serial != configured:
        shown = serial if isinstance(serial, str) and serial.isascii() else "?"
        raise ProtocolError(f"says hello as serial {said(shown, 16)}, configured {configured}")
    return {k: said(v, 64) if isinstance(v, str) else v for k, v in hello_fields(hello).items()}


def loggable_url(url: str) -> str:
    """A link's URL without its query (where a cloud's token may ride)."""
    return url.split("?", 1)[0]


_DECODER = json.JSONDecoder()


def decode(text: str | bytes) -> dict[str, Any] | None:
    """A frame's message: a JSON object with a string type, else None. json.loads'
    verdict on every text; a frame's usual text (a str of one JSON value, no white
    space around it) is read by its decoder without loads' checks around it."""
    try:
        if type(text) is str:
            try:
                message, end = _DECODER.raw_decode(text)
                if end != len(text):
                    raise ValueError("more after the value")
            except ValueError:  # white space around it is fine, as for loads; or junk
                message = json.loads(text)
        else:
            message = json.loads(text)
    except (UnicodeDecodeError, ValueError, RecursionError):
        return None
    if not isinstance(message, dict) or not isinstance(message.get("type"), str):
        return None
    return message


def encode(message: Mapping[str, Any]) -> str:
    return json.dumps(message, separators=(",", ":"), ensure_ascii=False, allow_nan=False)


def succeeded(response: Mapping[str, Any]) -> bool:
    """60.3 was seen answering "success": "true" (a string): truthy counts."""
    success = response.get("success")
    return success is True or (isinstance(success, str) and success.lower() == "true")
