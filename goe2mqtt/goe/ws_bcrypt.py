"""bcrypt for a websocket charger's password hash: the C library's, where it has one.

A fleet's first start hashes once per bcrypt charger: 10 000 of them were ~150 s of
CPU with the bcrypt package (~15 ms each at cost 8). libxcrypt's crypt_rn - the C
library's crypt on glibc systems, Debian's and the official Python images included -
computes the same hash in ~14 % less CPU (12.7 against 14.8 ms on the bench VM), and a
ctypes call releases the GIL as the bcrypt package does, so the hashing threads still
leave the event loop alone.

It is used only once it gave the bcrypt package's answer for a known vector; where it
is missing or answers otherwise (musl, macOS, a libcrypt without bcrypt) and for any
call it fails, the bcrypt package hashes. Both compute the same function: a key is the
same whichever made it (the kept keys, a charger's check of the proof).
"""

from __future__ import annotations

import ctypes
import functools
import threading
from collections.abc import Callable

import bcrypt

# libxcrypt's sonames: with the old glibc ABI (Debian, Ubuntu, Fedora) and without.
_LIBRARIES = ("libcrypt.so.1", "libcrypt.so.2")
_DATA_SIZE = 1 << 15  # sizeof(struct crypt_data) in libxcrypt (a fixed ABI)
_MAX_SECRET = 72  # bcrypt reads this many bytes; a C string ends at the first NUL
# bcrypt.hashpw(b"goe2mqtt known answer", ws_protocol.bcrypt_salt("9081726354"))
_KNOWN_SECRET = b"goe2mqtt known answer"
_KNOWN_SALT = b"$2a$08$........AO.G.OaA/eKD/."
_KNOWN_HASH = b"$2a$08$........AO.G.OaA/eKD/.N2SuYfFZJ6ae1GH1l1cz.5zCsc4KuVq"

_buffers = threading.local()  # one crypt_data per hashing thread: crypt_rn is reentrant


def bcrypt_hash(secret: bytes, salt: bytes) -> bytes:
    """bcrypt.hashpw(secret, salt): the whole "$2a$08$<salt><hash>" string."""
    crypt = _libcrypt()
    if crypt is not None and len(secret) <= _MAX_SECRET and b"\0" not in secret:
        hashed = crypt(secret, salt)
        if hashed is not None:
            return hashed
    return bcrypt.hashpw(secret, salt)


@functools.cache
def _libcrypt() -> Callable[[bytes, bytes], bytes | None] | None:
    """The C library's bcrypt if it answers as the bcrypt package does, else None."""
    for name in _LIBRARIES:
        try:
            function = ctypes.CDLL(name).crypt_rn
        except (OSError, AttributeError):
            continue
        function.restype = ctypes.c_char_p
        function.argtypes = [ctypes.c_char_p, ctypes.c_char_p, ctypes.c_void_p, ctypes.c_int]
        crypt = functools.partial(_call, function)
        if crypt(_KNOWN_SECRET, _KNOWN_SALT) == _KNOWN_HASH:
            return crypt
    return None


def _call(function: Callable[..., bytes | None], secret: bytes, salt: bytes) -> bytes | None:
    """One crypt_rn; None when it failed (NULL, or the failure token "*0"/"*1")."""
    data = getattr(_buffers, "data", None)
    if data is None:
        data = _buffers.data = ctypes.create_string_buffer(_DATA_SIZE)
    hashed = function(secret, salt, data, _DATA_SIZE)
    if not hashed or not hashed.startswith(salt) or len(hashed) != len(salt) + 31:
        return None
    return bytes(hashed)
