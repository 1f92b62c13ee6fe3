"""A lone UTF-16 surrogate ("\\ud800" in JSON) is no text: refused on arrival, and
never an exception where a payload is made into bytes for the broker."""

from __future__ import annotations

import json

import pytest

from goe2mqtt.commands.payloads import (
    CommandError,
    command_result,
    parse_payload,
    request_id_of,
    result_json,
)
from goe2mqtt.mqtt.client import wire_bytes


@pytest.mark.parametrize(
    "raw", [b'{"id": "\\ud800"}', b'"\\udc00"', b'{"trx": ["x\\udfff"]}', b'{"ts": "\\ud800"}']
)
def test_a_payload_holding_a_lone_surrogate_is_refused(raw: bytes) -> None:
    with pytest.raises(CommandError, match="lone surrogate"):
        parse_payload(raw)


def test_a_surrogate_pair_is_text_and_a_lone_one_is_no_id() -> None:
    assert parse_payload(b'{"id": "\\ud83d\\ude00"}').request_id == "\U0001f600"
    assert request_id_of(b'{"id": "\\ud800", "x": 1}') is None


def test_a_result_echoing_a_lone_surrogate_goes_out_as_the_escape_it_came_as() -> None:
    text = result_json(command_result("set", ok=False, request_id=None, error="got '\ud800'"))
    payload = wire_bytes(text)
    assert json.loads(payload) == {"service": "set", "ok": False, "error": "got '\ud800'"}
    assert wire_bytes(b"\xff") == b"\xff"
