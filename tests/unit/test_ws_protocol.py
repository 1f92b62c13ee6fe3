"""The websocket protocol's pure parts: hashes, auth, secured writes, frames."""

from __future__ import annotations

import json

import pytest

from goe2mqtt.goe.ws_protocol import (
    ProtocolError,
    auth_hash,
    auth_message,
    bcrypt_salt,
    decode,
    hash_kind,
    hashed_password,
    hello_serial,
    secured,
    set_value,
    succeeded,
    unwrap_secured,
)


def test_bcrypt_salt_is_the_serials_digit_values_in_bcrypts_alphabet() -> None:
    # 16 bytes: ten zeros, then 6 0 4 7 0 5 as byte values (not ASCII).
    salt = bcrypt_salt("604705")
    assert salt.startswith(b"$2a$08$")
    assert len(salt) == 29
    assert salt == b"$2a$08$..............W./.a./O"


@pytest.mark.parametrize(
    ("required", "hello", "kind"),
    [
        ({"hash": "bcrypt"}, {}, "bcrypt"),
        ({"hash": "pbkdf2"}, {"devicetype": "go-eCharger_Phoenix"}, "pbkdf2"),
        ({}, {"devicetype": "go-eCharger_V4"}, "pbkdf2"),
        ({}, {"devicetype": "go-eCharger_Phoenix"}, "bcrypt"),
        ({}, {"devicetype": "Wattpilot Pro"}, "bcrypt"),
    ],
)
def test_hash_kind_named_or_by_device(
    required: dict[str, str], hello: dict[str, str], kind: str
) -> None:
    assert hash_kind(required, hello) == kind


def test_an_unknown_hash_is_a_protocol_error() -> None:
    with pytest.raises(ProtocolError, match="unknown password hash"):
        hash_kind({"hash": "md5"}, {})


@pytest.mark.parametrize("kind", ["pbkdf2", "bcrypt"])
def test_hashes_are_stable_per_serial_and_differ_by_password(kind: str) -> None:
    one = hashed_password("pw", "604705", kind)  # type: ignore[arg-type]
    assert one == hashed_password("pw", "604705", kind)  # type: ignore[arg-type]
    assert one != hashed_password("pw2", "604705", kind)  # type: ignore[arg-type]
    assert one != hashed_password("pw", "604706", kind)  # type: ignore[arg-type]
    assert len(one) == (32 if kind == "pbkdf2" else 31)


def test_auth_message_proves_the_password_with_a_fresh_token3() -> None:
    hashed = b"h" * 32
    first = auth_message({"token1": "a", "token2": "b"}, hashed)
    second = auth_message({"token1": "a", "token2": "b"}, hashed)
    assert first["token3"] != second["token3"]
    assert first["hash"] == auth_hash("a", "b", first["token3"], hashed)
    with pytest.raises(ProtocolError):
        auth_message({"token1": 1, "token2": "b"}, hashed)


def test_secured_write_round_trip_and_tampering() -> None:
    hashed = b"k" * 32
    wrapped = secured(set_value(7, "amp", 16), hashed)
    assert wrapped["type"] == "securedMsg"
    assert wrapped["requestId"] == "7sm"
    assert unwrap_secured(wrapped, hashed) == {
        "type": "setValue", "requestId": 7, "key": "amp", "value": 16,
    }  # fmt: skip
    with pytest.raises(ProtocolError, match="wrong hmac"):
        unwrap_secured(wrapped, b"x" * 32)
    tampered = {**wrapped, "data": wrapped["data"].replace("16", "32")}
    with pytest.raises(ProtocolError, match="wrong hmac"):
        unwrap_secured(tampered, hashed)


@pytest.mark.parametrize(
    "frame", ["", "not json", "[1]", '{"no": "type"}', '{"type": 5}', "[" * 100_000, b"\xff\xfe"]
)
def test_frames_that_are_not_messages_decode_to_none(frame: str | bytes) -> None:
    assert decode(frame) is None


@pytest.mark.parametrize(
    ("answer", "ok"),
    [({"success": True}, True), ({"success": "true"}, True), ({"success": False}, False),
     ({"success": "false"}, False), ({}, False), ({"success": 1}, False)],
)  # fmt: skip
def test_success_is_true_or_the_text_true(answer: dict[str, object], ok: bool) -> None:
    assert succeeded(answer) is ok


def test_bcrypt_salt_reads_ascii_digits_only() -> None:
    # str.isdigit() takes "²", and int("²") raises: a hostile hello's serial.
    assert bcrypt_salt("12\u00b2345") == bcrypt_salt("12345")


@pytest.mark.parametrize("serial", ["12\u00b2345", "", "60 47 05", "x" * 33, 604705, None])
def test_a_hello_serial_no_charger_has_is_a_protocol_error(serial: object) -> None:
    with pytest.raises(ProtocolError, match="serial"):
        hello_serial({"type": "hello", "serial": serial})


def test_a_hello_serial_is_the_salt() -> None:
    assert hello_serial({"serial": "604705"}) == "604705"


@pytest.mark.parametrize(
    "frame",
    ['{"type":"deltaStatus","status":{"amp":16}}', ' {"type": "hello"}\n', '\t{"type":"x"} ',
     '{"type":"a"}{"type":"b"}', '{"type":"a"} junk', '\ufeff{"type":"a"}', '{"type":"a",}',
     '{"type":"a","v":NaN}', b'{"type":"hello"}', "{}", '"type"'],
)  # fmt: skip
def test_a_frame_decodes_as_json_loads_reads_it(frame: str | bytes) -> None:
    """decode reads the usual frame without json.loads' checks around it: the same verdict."""
    try:
        loaded = json.loads(frame)
    except ValueError:
        loaded = None
    expected = loaded if isinstance(loaded, dict) and isinstance(loaded.get("type"), str) else None
    assert decode(frame) == expected
