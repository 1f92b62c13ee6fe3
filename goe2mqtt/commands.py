"""Command services: payload -> validated arguments -> go-e set calls.

Pure: no I/O. Each service is one ServiceDescription; the bridge runs the plan.
Validation happens entirely before any API call, so bad input never reaches
the charger.
"""

from __future__ import annotations

import json
import math
import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import Any, Final

from goe2mqtt.catalogue import CAR_STATES, PHASE_MODES, Status
from goe2mqtt.goe import JsonValue

MAX_PAYLOAD_BYTES = 4096
# HA's default payload for a button; accepted by every parameterless service.
PRESS = "PRESS"
# A default limit when the charger has not told us its own (go-e hardware range).
FALLBACK_CURRENT_RANGE = (6, 32)

# A bare word is what HA's select and button publish (auto, PRESS): not JSON, not an error.
_BARE_WORD = re.compile(r"^[A-Za-z0-9_][A-Za-z0-9_ .-]{0,63}$")


class CommandError(Exception):
    """Invalid command; the message is the reason put on the result topic."""


class _Nothing:
    """An empty payload: no arguments at all (distinct from a JSON null)."""

    def __repr__(self) -> str:
        return "NOTHING"


NOTHING: Final = _Nothing()

SetCall = dict[str, JsonValue]


@dataclass(frozen=True)
class Payload:
    value: Any  # a JSON value, a bare word, or NOTHING
    request_id: JsonValue = None
    sent_at: float | None = None  # unix seconds, from a "ts" field


# Numbers above this are milliseconds (JavaScript's Date.now()); in seconds it is the year 5138.
_MILLISECONDS_FROM = 1e11


def parse_timestamp(value: Any) -> float:
    """A "ts" field: unix seconds or milliseconds, or an ISO 8601 time with a zone."""
    if isinstance(value, int | float) and not isinstance(value, bool):
        if not math.isfinite(value) or value < 0:
            raise CommandError("ts must be a unix time or an ISO 8601 time")
        return value / 1000 if value > _MILLISECONDS_FROM else float(value)
    if isinstance(value, str):
        try:
            moment = datetime.fromisoformat(value)
        except ValueError:
            raise CommandError("ts must be a unix time or an ISO 8601 time") from None
        if moment.tzinfo is None:
            raise CommandError("ts needs a time zone (e.g. 2026-01-01T12:00:00Z)")
        return moment.timestamp()
    raise CommandError("ts must be a unix time or an ISO 8601 time")


def check_fresh(
    sent_at: float | None, *, now: float, max_age: float, what: str = "sent"
) -> None:
    """Refuse a command that is too old to run, or from a clock too far ahead."""
    if sent_at is None:
        return
    age = now - sent_at
    if age > max_age:
        raise CommandError(f"stale: {what} {age:.0f} s ago, max_command_age is {max_age:.0f} s")
    if age < -max_age:
        raise CommandError(f"ts is {-age:.0f} s in the future: check the sender's clock")


def parse_payload(raw: bytes) -> Payload:
    if len(raw) > MAX_PAYLOAD_BYTES:
        raise CommandError(f"payload larger than {MAX_PAYLOAD_BYTES} bytes")
    try:
        text = raw.decode("utf-8").strip()
    except UnicodeDecodeError:
        raise CommandError("payload is not UTF-8 text") from None
    if not text:
        return Payload(NOTHING)
    try:
        value = json.loads(text)
    except RecursionError:  # 4 KiB of "[" nests deeper than the parser's stack
        raise CommandError("payload is nested too deeply") from None
    except ValueError:
        if _BARE_WORD.match(text):
            return Payload(text)
        raise CommandError("payload is not valid JSON") from None
    if isinstance(value, dict):
        request_id = value.pop("id", None)
        if not _valid_id(request_id):
            raise CommandError("id must be a string or a finite number")
        sent_at = parse_timestamp(value.pop("ts")) if "ts" in value else None
        return Payload(value, request_id, sent_at)
    return Payload(value)


# --- parameter converters: raw JSON -> the value go-e gets -------------------------


def _integer(name: str, value: Any) -> int:
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise CommandError(f"{name} must be an integer")
    if isinstance(value, float):
        if not value.is_integer():
            raise CommandError(f"{name} must be an integer")
        return int(value)
    return value


def _charging_power(value: Any) -> JsonValue:
    return _integer("charging_power", value)


# What people type for a phase mode besides the names HA shows (auto, 1_phase, 3_phases).
# go-e's own codes are 0 auto, 1 one phase, 2 three phases; "3" can only mean three.
_PHASE_WORDS = {
    **{name: code for code, name in PHASE_MODES.items()},
    **dict.fromkeys(("0", "automatic"), 0),
    **dict.fromkeys(("1", "1p", "1_phases", "one", "one_phase", "single", "single_phase"), 1),
    **dict.fromkeys(("3", "3p", "3_phase", "three", "three_phase", "three_phases"), 2),
}
_PHASE_NUMBERS = {0: 0, 1: 1, 2: 2, 3: 2}
_PHASE_CHOICES = "auto (0), 1_phase (1) or 3_phases (2, or 3)"


def _phase(value: Any) -> JsonValue:
    if isinstance(value, str):
        word = re.sub(r"[\s-]+", "_", value.strip().lower())
        if word in _PHASE_WORDS:
            return _PHASE_WORDS[word]
        raise CommandError(f"phase must be {_PHASE_CHOICES}, got {value[:20]!r}")
    try:
        code = _integer("phase", value)
    except CommandError:
        raise CommandError(f"phase must be {_PHASE_CHOICES}") from None
    if code not in _PHASE_NUMBERS:
        raise CommandError(f"phase must be {_PHASE_CHOICES}, got {code}")
    return _PHASE_NUMBERS[code]


def _transaction(value: Any) -> JsonValue:
    # Only "none" and "authenticate all users" are offered: card indexes are the owner's business.
    if value is None or (not isinstance(value, bool) and value == 0):
        return None if value is None else 0
    raise CommandError("status must be null (no transaction) or 0 (authenticate all users)")


@dataclass(frozen=True)
class Param:
    name: str
    convert: Callable[[Any], JsonValue]
    required: bool = True


Arguments = Mapping[str, JsonValue]
Planner = Callable[[Arguments, Status], list[SetCall]]


@dataclass(frozen=True, kw_only=True)
class ServiceDescription:
    name: str
    params: tuple[Param, ...]
    plan: Planner
    summary: str

    def usage(self) -> str:
        """What the payload may be, for the reasons of refused commands."""
        if not self.params:
            return "no parameters: an empty payload, {} or PRESS"
        if len(self.params) == 1:
            name = self.params[0].name
            forms = f'{{"{name}": ...}} or the bare value'
            return forms if self.params[0].required else f"an empty payload, {{}}, {forms}"
        return "a JSON object with " + ", ".join(p.name for p in self.params)

    def arguments(self, value: Any) -> dict[str, JsonValue]:
        """Validate a parsed payload against the parameters."""
        if value is NOTHING:
            given: dict[str, Any] = {}
        elif isinstance(value, dict):
            unknown = sorted(set(value) - {p.name for p in self.params})
            if unknown:
                raise CommandError(f"unknown parameter {unknown[0]!r} for {self.name}")
            given = dict(value)
        elif not self.params:
            if value != PRESS:
                raise CommandError(f"{self.name} takes {self.usage()}")
            given = {}
        elif len(self.params) == 1:
            param = self.params[0]
            if isinstance(value, list) or (value is None and not param.required):
                if value is None:
                    given = {}  # null: "no value", so the optional parameter is left out
                else:
                    raise CommandError(f"{self.name} takes {self.usage()}, not a JSON array")
            else:
                given = {param.name: value}  # a bare value for a one-parameter service
        else:
            raise CommandError(f"{self.name} needs a JSON object")
        args: dict[str, JsonValue] = {}
        for param in self.params:
            if param.name in given:
                args[param.name] = param.convert(given[param.name])
            elif param.required:
                raise CommandError(f"{param.name} is required")
        return args


def current_range(status: Status) -> tuple[int, int]:
    low, high = status.get("mca"), status.get("ama")
    if isinstance(low, int) and isinstance(high, int) and not isinstance(low, bool) and low <= high:
        return low, high
    return FALLBACK_CURRENT_RANGE


def _checked_current(args: Arguments, status: Status) -> list[SetCall]:
    power = args.get("charging_power")
    if power is None:
        return []
    assert isinstance(power, int)
    low, high = current_range(status)
    if not low <= power <= high:
        raise CommandError(f"charging_power must be between {low} and {high} A, got {power}")
    return [{"amp": power}]


def _start(args: Arguments, status: Status) -> list[SetCall]:
    return [*_checked_current(args, status), {"frc": 2}]


def _stop(args: Arguments, status: Status) -> list[SetCall]:
    return [{"frc": 1}]


def _change_power(args: Arguments, status: Status) -> list[SetCall]:
    return _checked_current(args, status)


def _set_phase(args: Arguments, status: Status) -> list[SetCall]:
    return [{"psm": args["phase"]}]


def _set_transaction(args: Arguments, status: Status) -> list[SetCall]:
    return [{"trx": args["status"]}]


# The button does what the car state calls for, as the integration's button did.
_BUTTON_ACTIONS: Mapping[int, SetCall] = {
    2: {"frc": 1},  # charging -> stop
    3: {"trx": 0},  # waiting / authentication required -> authenticate
    4: {"frc": 2},  # complete -> start
}


def _wallbox_control(args: Arguments, status: Status) -> list[SetCall]:
    car = status.get("car")
    if car == 1:
        raise CommandError("no car connected: nothing to do")
    if not isinstance(car, int) or car not in _BUTTON_ACTIONS:
        state = CAR_STATES.get(car, "unknown") if isinstance(car, int) else "unknown"
        raise CommandError(f"car state {state}: nothing to do")
    return [dict(_BUTTON_ACTIONS[car])]


SERVICES: tuple[ServiceDescription, ...] = (
    ServiceDescription(
        name="start_charging",
        params=(Param("charging_power", _charging_power, required=False),),
        plan=_start,
        summary="set amp if charging_power is given, then frc=2",
    ),
    ServiceDescription(name="stop_charging", params=(), plan=_stop, summary="frc=1"),
    ServiceDescription(
        name="change_charging_power",
        params=(Param("charging_power", _charging_power),),
        plan=_change_power,
        summary="amp=charging_power",
    ),
    ServiceDescription(
        name="set_phase",
        params=(Param("phase", _phase),),
        plan=_set_phase,
        summary="psm=phase (0 auto, 1 one phase, 2 three phases)",
    ),
    ServiceDescription(
        name="set_transaction",
        params=(Param("status", _transaction),),
        plan=_set_transaction,
        summary="trx=null (none) or trx=0 (authenticate all users)",
    ),
    ServiceDescription(
        name="wallbox_control",
        params=(),
        plan=_wallbox_control,
        summary="by car state: charging -> stop, waiting -> authenticate, complete -> start",
    ),
)

SERVICES_BY_NAME: Mapping[str, ServiceDescription] = {s.name: s for s in SERVICES}


@dataclass(frozen=True)
class Command:
    service: ServiceDescription
    arguments: Arguments
    request_id: JsonValue
    sent_at: float | None = None


def parse_command(service_name: str, raw: bytes) -> Command:
    """Everything that can be checked without the charger's state."""
    service = SERVICES_BY_NAME.get(service_name)
    if service is None:
        raise CommandError(f"unknown service {service_name!r}")
    payload = parse_payload(raw)
    return Command(
        service, service.arguments(payload.value), payload.request_id, payload.sent_at
    )


def request_id_of(raw: bytes) -> JsonValue:
    """Best effort: the id of a payload that failed validation, so the result still matches."""
    if len(raw) > MAX_PAYLOAD_BYTES:
        return None
    try:
        value = json.loads(raw)
    except (ValueError, RecursionError):
        return None
    request_id = value.get("id") if isinstance(value, dict) else None
    return request_id if _valid_id(request_id) else None


def _valid_id(value: Any) -> bool:
    """What can be echoed in a result: JSON has no Infinity or NaN (1e400 parses as inf)."""
    if isinstance(value, float):
        return math.isfinite(value)
    return value is None or isinstance(value, str | int)


# --- results ------------------------------------------------------------------------


def command_result(
    service: str, *, ok: bool, request_id: JsonValue, error: str | None = None, **extra: Any
) -> dict[str, Any]:
    """One result for {base}/{name}/cmd/result: service, ok, id, error and details."""
    result: dict[str, Any] = {"service": service, "ok": ok}
    if error is not None:
        result["error"] = error
    if request_id is not None:
        result["id"] = request_id
    result.update(extra)
    return result


def result_json(result: Mapping[str, Any]) -> str:
    """Always valid JSON: a value the charger sent as NaN or Infinity becomes null."""
    try:
        return json.dumps(result, allow_nan=False, ensure_ascii=False)
    except ValueError:
        return json.dumps(_finite(result), allow_nan=False, ensure_ascii=False)


def _finite(value: Any) -> Any:
    if isinstance(value, float) and not math.isfinite(value):
        return None
    if isinstance(value, Mapping):
        return {k: _finite(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_finite(v) for v in value]
    return value
