"""A websocket connection's way in (goe/ws_login): the hello, the auth steps, and what
the link reads of them - the key its secured writes sign with, why it is not live."""

from __future__ import annotations

import json

import pytest

from goe2mqtt.goe.ws_auth import LinkAuth
from goe2mqtt.goe.ws_login import MAX_AUTH_ROUNDS, LinkLogin, WrongPassword
from goe2mqtt.goe.ws_protocol import ProtocolError
from goe2mqtt.goe.ws_secrets import LinkSecrets

PASSWORD = "wallbox-pw-login"
HELLO = {"type": "hello", "serial": "012345", "devicetype": "go-eCharger_V4", "secured": True}
AUTH_REQUIRED = {"type": "authRequired", "token1": "a", "token2": "b", "hash": "bcrypt"}


def login(serial: str | None = "012345") -> LinkLogin:
    secrets = LinkSecrets([PASSWORD])
    return LinkLogin(LinkAuth(PASSWORD, secrets, None, charger="garage"), secrets, serial,
                     charger="garage")  # fmt: skip


def test_what_a_connection_waits_for_follows_its_steps() -> None:
    way_in = login()
    assert way_in.why_not_live() == "no hello"
    way_in.said_hello(HELLO)
    assert way_in.hello["serial"] == "012345"
    assert way_in.why_not_live() == "no authRequired"
    assert way_in.asked(AUTH_REQUIRED) == ("012345", "bcrypt")
    frame = json.loads(way_in.answer(AUTH_REQUIRED, b"hashed"))
    assert set(frame) == {"type", "token3", "hash"}
    assert frame["type"] == "auth"
    assert (way_in.secured, way_in.hashed) == (True, b"hashed")
    assert way_in.why_not_live() == "no full status"
    way_in.reset()  # the next connection
    assert (way_in.hello, way_in.hashed, way_in.secured) == ({}, None, False)
    assert way_in.why_not_live() == "no hello"


def test_an_unsecured_hello_waits_only_for_the_full_status() -> None:
    way_in = login()
    way_in.said_hello({**HELLO, "secured": False})
    assert not way_in.secured
    assert way_in.why_not_live() == "no full status"


def test_auth_is_asked_at_most_max_auth_rounds_times_a_connection() -> None:
    way_in = login()
    way_in.said_hello(HELLO)
    for _ in range(MAX_AUTH_ROUNDS):
        way_in.asked(AUTH_REQUIRED)
    with pytest.raises(ProtocolError, match="again and again"):
        way_in.asked(AUTH_REQUIRED)
    way_in.reset()
    way_in.said_hello(HELLO)
    assert way_in.asked(AUTH_REQUIRED) == ("012345", "bcrypt")  # counted anew


def test_auth_before_a_hello_and_a_hello_naming_another_charger_are_refused() -> None:
    with pytest.raises(ProtocolError, match="before a hello"):
        login().asked(AUTH_REQUIRED)
    with pytest.raises(ProtocolError, match="configured 067890"):
        login("067890").said_hello(HELLO)


def test_an_auth_error_is_a_wrong_password_with_the_password_masked() -> None:
    refused = login().refused({"type": "authError", "message": f"bad {PASSWORD}"})
    assert isinstance(refused, WrongPassword)
    assert str(refused).startswith("wrong password: the charger refused it (bad ")
    assert PASSWORD not in str(refused)
