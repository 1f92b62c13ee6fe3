"""Command services: payload parsing, validation and planning (pure)."""

from __future__ import annotations

import json
from typing import Any

import pytest

from goe2mqtt.commands.payloads import (
    NOTHING,
    CommandError,
    check_fresh,
    parse_payload,
    request_id_of,
)
from goe2mqtt.commands.services import SERVICES_BY_NAME, parse_command

STATUS: dict[str, Any] = {"car": 2, "mca": 6, "ama": 16}


def plan(service: str, payload: str, status: dict[str, Any] | None = None) -> list[dict[str, Any]]:
    command = parse_command(service, payload.encode())
    return command.service.plan(command.arguments, STATUS if status is None else status)


@pytest.mark.parametrize(
    ("service", "payload", "calls"),
    [
        ("start_charging", "", [{"frc": 2}]),
        ("start_charging", "{}", [{"frc": 2}]),
        ("start_charging", '{"charging_power": 10}', [{"amp": 10}, {"frc": 2}]),
        ("stop_charging", "", [{"frc": 1}]),
        ("stop_charging", "{}", [{"frc": 1}]),
        ("change_charging_power", '{"charging_power": 10}', [{"amp": 10}]),
        ("change_charging_power", "10", [{"amp": 10}]),
        ("change_charging_power", "10.0", [{"amp": 10}]),  # what HA's number may send
        ("set_phase", '{"phase": 1}', [{"psm": 1}]),
        ("set_phase", "0", [{"psm": 0}]),
        ("set_phase", "2", [{"psm": 2}]),
        ("set_phase", "3_phases", [{"psm": 2}]),  # what HA's select sends
        ("set_phase", '"auto"', [{"psm": 0}]),
        # What people try: "3" for three phases, HA's names in other spellings.
        ("set_phase", "3", [{"psm": 2}]),
        ("set_phase", '{"phase": 3}', [{"psm": 2}]),
        ("set_phase", "3 phases", [{"psm": 2}]),
        ("set_phase", '"Three-Phase"', [{"psm": 2}]),
        ("set_phase", "1p", [{"psm": 1}]),
        ("set_phase", '"single"', [{"psm": 1}]),
        ("start_charging", "null", [{"frc": 2}]),  # null: no charging_power
        ("set_transaction", '{"status": 0}', [{"trx": 0}]),
        ("set_transaction", '{"status": null}', [{"trx": None}]),
        ("set_transaction", "0", [{"trx": 0}]),
        ("set_transaction", "null", [{"trx": None}]),
        ("wallbox_control", "PRESS", [{"frc": 1}]),
        ("wallbox_control", "", [{"frc": 1}]),
    ],
)
def test_valid_commands_plan_the_documented_calls(
    service: str, payload: str, calls: list[dict[str, Any]]
) -> None:
    assert plan(service, payload) == calls


@pytest.mark.parametrize(
    ("service", "payload", "reason"),
    [
        ("start_charging", "{", "not valid JSON"),
        ("start_charging", '{"charging_power": 40}', "16 A (max current setting 16 A), got 40"),
        ("start_charging", '{"charging_power": 5}', "between 6 and 16 A, got 5"),
        ("start_charging", '{"power": 10}', "unknown parameter 'power'"),
        ("start_charging", "PRESS", "charging_power must be an integer"),
        ("change_charging_power", "", "charging_power is required"),
        ("change_charging_power", "{}", "charging_power is required"),
        ("change_charging_power", "10.5", "must be an integer"),
        ("change_charging_power", '"ten"', "must be an integer"),
        ("change_charging_power", "true", "must be an integer"),
        ("change_charging_power", "[10]", 'takes {"charging_power": ...} or the bare value'),
        ("start_charging", "[]", "start_charging takes an empty payload, {}, "),
        ("change_charging_power", "99", "between 6 and 16 A (max current setting 16 A), got 99"),
        ("set_phase", "4", "phase must be auto (0), 1_phase (1) or 3_phases (2, or 3), got 4"),
        ("set_phase", '{"phase": "two"}', "phase must be auto (0), 1_phase (1)"),
        ("set_phase", '{"phase": true}', "phase must be auto (0), 1_phase (1)"),
        ("set_transaction", "1", "status must be null"),
        ("set_transaction", "false", "status must be null"),
        ("set_transaction", "", "status is required"),
        ("stop_charging", "5", "takes no parameters: an empty payload, {} or PRESS"),
        ("frobnicate", "{}", "unknown service 'frobnicate'"),
        # A writable entity whose command topic is another name: say which.
        (
            "charging_current",
            "12",
            "unknown service 'charging_current': Charging current"
            " is set with cmd/change_charging_power",
        ),
        ("phase_mode", "auto", "'phase_mode': Phase mode is set with cmd/set_phase"),
        ("start_charging", "ÿ", "charging_power must be an integer"),
        ("start_charging", "x" * 5000, "larger than 4096 bytes"),
    ],
)
def test_invalid_commands_are_refused_with_a_reason(
    service: str, payload: str, reason: str
) -> None:
    with pytest.raises(CommandError, match=None) as caught:
        plan(service, payload)
    assert reason in str(caught.value)


def test_non_utf8_payload_is_refused() -> None:
    with pytest.raises(CommandError, match="not UTF-8"):
        parse_command("stop_charging", b"\xff\xfe")


@pytest.mark.parametrize(
    ("car", "calls", "reason"),
    [
        (2, [{"frc": 1}], None),  # charging -> stop
        (3, [{"trx": 0}], None),  # waiting / auth required -> authenticate
        (4, [{"frc": 2}], None),  # complete -> start
        (1, None, "no car connected"),
        (0, None, "car state unknown: nothing to do"),
        (5, None, "car state error: nothing to do"),
        (None, None, "car state unknown"),
        # As the catalogue reads car (Home Assistant's car status): 2.0 is charging,
        # true and 10**400 are no car state (true was taken as 1, "no car connected").
        (2.0, [{"frc": 1}], None),
        (True, None, "car state unknown: nothing to do"),
        (10**400, None, "car state unknown: nothing to do"),
    ],
)
def test_button_acts_on_the_car_state(
    car: float | None, calls: list[dict[str, Any]] | None, reason: str | None
) -> None:
    status = {**STATUS, "car": car}
    if calls is not None:
        assert plan("wallbox_control", "PRESS", status) == calls
    else:
        with pytest.raises(CommandError) as caught:
            plan("wallbox_control", "PRESS", status)
        assert reason is not None
        assert reason in str(caught.value)


def test_current_limits_fall_back_when_the_charger_has_not_said() -> None:
    assert plan("change_charging_power", "32", {}) == [{"amp": 32}]
    with pytest.raises(CommandError, match="between 6 and 32"):
        plan("change_charging_power", "33", {})


def test_request_id_is_taken_out_and_echoed() -> None:
    command = parse_command("change_charging_power", b'{"charging_power": 8, "id": "abc"}')
    assert command.request_id == "abc"
    assert command.arguments == {"charging_power": 8}
    assert request_id_of(b'{"charging_power": 99, "id": 7}') == 7
    assert request_id_of(b"{broken") is None


def test_payload_forms() -> None:
    assert parse_payload(b"").value is NOTHING
    assert parse_payload(b"  \n").value is NOTHING
    assert parse_payload(b"null").value is None
    assert parse_payload(b"PRESS").value == "PRESS"
    with pytest.raises(CommandError, match="id must be"):
        parse_payload(b'{"id": {"a": 1}}')


@pytest.mark.parametrize("request_id", [b"true", b"false", b"[1]", b"1e400"])
def test_an_id_that_is_no_string_or_number_is_refused_and_not_echoed(request_id: bytes) -> None:
    payload = b'{"charging_power": 8, "id": ' + request_id + b"}"
    with pytest.raises(CommandError, match="id must be a string or a number"):
        parse_payload(payload)
    assert request_id_of(payload) is None


def test_every_service_documents_itself() -> None:
    for service in SERVICES_BY_NAME.values():
        assert service.summary


@pytest.mark.parametrize(
    ("ts", "seconds"),
    [
        (1_790_000_000, 1_790_000_000.0),
        (1_790_000_000.5, 1_790_000_000.5),
        (1_790_000_000_123, 1_790_000_000.123),  # JavaScript's Date.now()
        ("2026-09-21T14:13:20Z", 1_790_000_000.0),
        ("2026-09-21T16:13:20+02:00", 1_790_000_000.0),
    ],
)
def test_ts_may_be_seconds_milliseconds_or_iso(ts: object, seconds: float) -> None:
    command = parse_command("stop_charging", json.dumps({"ts": ts}).encode())
    assert command.sent_at == pytest.approx(seconds)
    assert command.arguments == {}


@pytest.mark.parametrize(
    ("ts", "reason"),
    [
        ("yesterday", "ts must be a unix time or an ISO 8601 time"),
        ("2026-09-21T14:13:20", "ts needs a time zone"),
        (-5, "ts must be a unix time"),
        (True, "ts must be a unix time"),
        ([1], "ts must be a unix time"),
    ],
)
def test_bad_ts_is_a_reason_not_a_crash(ts: object, reason: str) -> None:
    with pytest.raises(CommandError, match=f"^{reason}"):
        parse_command("stop_charging", json.dumps({"ts": ts}).encode())


def test_freshness_window() -> None:
    check_fresh(None, now=1000.0, max_age=300)  # no ts: the session bounds the age
    check_fresh(800.0, now=1000.0, max_age=300)
    with pytest.raises(CommandError, match=r"^stale: sent 400 s ago, max_command_age is 300 s"):
        check_fresh(600.0, now=1000.0, max_age=300)
    with pytest.raises(CommandError, match=r"^ts is 400 s in the future"):
        check_fresh(1400.0, now=1000.0, max_age=300)


def test_deeply_nested_payload_is_refused_not_a_recursion_error() -> None:
    with pytest.raises(CommandError, match="nested too deeply"):
        parse_command("set_phase", b"[" * 4000)
    assert request_id_of(b"[" * 4000) is None
    assert request_id_of(b'{"id": "a", "ts": "garbage"}') == "a"
