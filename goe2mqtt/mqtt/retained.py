"""How the MQTT session keeps retained payloads in memory until the broker has them.

Payloads of PACK_FROM bytes or more are kept zlib-compressed: a charger's discovery
configs (~800 bytes each, 100+ of them) halve, and they are only read again to send.
"""

from __future__ import annotations

import zlib

PACK_FROM = 256


class _Packed(bytes):
    """A retained payload kept compressed."""


def pack(data: bytes) -> bytes:
    return _Packed(zlib.compress(data, 6)) if len(data) >= PACK_FROM else data


def unpack(stored: bytes) -> bytes:
    return zlib.decompress(stored) if isinstance(stored, _Packed) else stored
