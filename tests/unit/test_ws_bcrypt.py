"""bcrypt through the C library where it has it: the same hash as the bcrypt package."""

from __future__ import annotations

import hashlib
import sys
import threading

import bcrypt
import pytest

from goe2mqtt.goe import ws_bcrypt
from goe2mqtt.goe.ws_bcrypt import bcrypt_hash
from goe2mqtt.goe.ws_protocol import bcrypt_salt


def test_the_known_answer_is_the_bcrypt_packages() -> None:
    assert bcrypt.hashpw(ws_bcrypt._KNOWN_SECRET, bcrypt_salt("9081726354")) == (
        ws_bcrypt._KNOWN_HASH
    )


@pytest.mark.parametrize("serial", ["604705", "200000", "209999", "1234567890123456789", "x"])
def test_the_same_hash_as_the_bcrypt_package(serial: str) -> None:
    secret = hashlib.sha256(f"password of {serial}".encode()).hexdigest().encode()
    salt = bcrypt_salt(serial)
    assert bcrypt_hash(secret, salt) == bcrypt.hashpw(secret, salt)


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="libxcrypt is glibc Linux's")
def test_glibc_linux_hashes_with_the_c_library() -> None:
    # The image goe2mqtt ships (Debian's python) has libxcrypt: the faster path is taken.
    assert ws_bcrypt._libcrypt() is not None


def test_threads_hash_at_once_each_with_its_own_buffer() -> None:
    salts = [bcrypt_salt(f"{300000 + i}") for i in range(8)]
    secret = b"0123456789abcdef" * 4
    found: dict[bytes, bytes] = {}

    def hash_one(salt: bytes) -> None:
        found[salt] = bcrypt_hash(secret, salt)

    threads = [threading.Thread(target=hash_one, args=(salt,)) for salt in salts]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert found == {salt: bcrypt.hashpw(secret, salt) for salt in salts}


def test_without_the_c_library_the_bcrypt_package_hashes(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(ws_bcrypt, "_LIBRARIES", ("libgoe2mqtt-none.so.9",))
    ws_bcrypt._libcrypt.cache_clear()
    try:
        assert ws_bcrypt._libcrypt() is None
        salt = bcrypt_salt("604705")
        assert bcrypt_hash(b"secret", salt) == bcrypt.hashpw(b"secret", salt)
    finally:
        ws_bcrypt._libcrypt.cache_clear()


def test_a_c_library_that_answers_otherwise_is_not_used(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(ws_bcrypt, "_KNOWN_HASH", ws_bcrypt._KNOWN_HASH[:-1] + b"x")
    ws_bcrypt._libcrypt.cache_clear()
    try:
        assert ws_bcrypt._libcrypt() is None
    finally:
        ws_bcrypt._libcrypt.cache_clear()


def test_what_a_c_string_cannot_carry_goes_to_the_bcrypt_package() -> None:
    # A NUL would end the C string early, bcrypt reads 72 bytes: the package's answer
    # (a hash, or its refusal) stands.
    salt = bcrypt_salt("604705")
    assert bcrypt_hash(b"a\0b", salt) == bcrypt.hashpw(b"a\0b", salt)
    with pytest.raises(ValueError, match="longer than 72 bytes"):
        bcrypt_hash(b"x" * 100, salt)
