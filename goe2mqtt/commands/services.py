"""Command services: payload -> validated arguments -> go-e set calls.

Pure: no I/O. Each service is one ServiceDescription; the bridge runs the plan.
Validation happens entirely before any API call, so bad input never reaches
the charger.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any, cast

from goe2mqtt.catalogue import (
    CAR_STATES,
    ENTITIES,
    ENTITIES_BY_KEY,
    PHASE_MODES,
    SETTABLE,
    EntityDescription,
    Invalid,
    Status,
)
from goe2mqtt.catalogue.model import PRESS
from goe2mqtt.catalogue.readers import car_code
from goe2mqtt.catalogue.writes import Unit, to_goe
from goe2mqtt.commands.payloads import NOTHING, CommandError, SetCall, parse_payload
from goe2mqtt.util.numbers import finite_number
from goe2mqtt.util.text import fold
from goe2mqtt.util.values import JsonValue

# --- parameter converters: raw JSON -> the value go-e gets -------------------------


def _integer(name: str, value: Any) -> int:
    number = finite_number(value)
    if number is None or not float(number).is_integer():
        raise CommandError(f"{name} must be an integer")
    return int(number)


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
        word = fold(value)
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
    # The plan picks what to write by the car's state (the button): the runner reads the
    # charger first, as a polled state may be scan_interval old.
    reads_car: bool = False

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


def _checked_current(args: Arguments, status: Status) -> list[SetCall]:
    power = args.get("charging_power")
    if power is None:
        return []
    return [
        {"amp": _to_goe(ENTITIES_BY_KEY["charging_current"], power, status, name="charging_power")}
    ]


def _to_goe(
    entity: EntityDescription, value: Any, status: Status, *, name: str, unit: Unit = "entity"
) -> JsonValue:
    assert entity.write is not None
    try:
        converted: JsonValue = to_goe(
            entity.write, value, status, name=name, unit=unit, label=entity.unit
        )
    except Invalid as exc:
        raise CommandError(str(exc)) from None
    return converted


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


def car_state_name(car: Any) -> str:
    """The car state's word (charging, complete, ...), unknown for anything else."""
    return CAR_STATES.get(car, "unknown") if isinstance(car, int) else "unknown"


def _wallbox_control(args: Arguments, status: Status) -> list[SetCall]:
    car = car_code(status)  # as Home Assistant's car status shows it
    if car == 1:
        raise CommandError("no car connected: nothing to do")
    if car is None or car not in _BUTTON_ACTIONS:
        raise CommandError(f"car state {car_state_name(car)}: nothing to do")
    return [dict(_BUTTON_ACTIONS[car])]


SEED_SERVICES: tuple[ServiceDescription, ...] = (
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
        reads_car=True,
    ),
)


# --- one service per writable entity, and the generic set ---------------------------


def _as_is(value: Any) -> JsonValue:
    """Parameters whose checks need the charger's state: validated in the plan."""
    return cast(JsonValue, value)


def _entity_service(entity: EntityDescription) -> ServiceDescription:
    """cmd/<entity key>: the value in the entity's unit, as its state topic shows it."""
    write = entity.write
    assert write is not None

    def plan(args: Arguments, status: Status) -> list[SetCall]:
        value = _to_goe(entity, args.get("value"), status, name=entity.key)
        return [{write.key: value}]

    null = f", or null ({write.null_means})" if write.null_means else ""
    return ServiceDescription(
        name=entity.key,
        params=() if write.kind == "press" else (Param("value", _as_is),),
        plan=plan,
        summary=f"{write.key}={entity.key} ({write.kind}{null})",
    )


def _set_keys(args: Arguments, status: Status) -> list[SetCall]:
    if not args:
        raise CommandError('set needs at least one key, e.g. {"frc": 0}')
    call: SetCall = {}
    for key, value in args.items():
        call[key] = _to_goe(SETTABLE[key], value, status, name=key, unit="goe")
    return [call]


def _settable_param(key: str) -> Param:
    return Param(key, _as_is, required=False)


GENERIC_SET = ServiceDescription(
    name="set",
    params=tuple(_settable_param(key) for key in sorted(SETTABLE)),
    plan=_set_keys,
    summary="any writable go-e key in go-e's unit, validated like its entity: "
    + ", ".join(sorted(SETTABLE)),
)

SERVICES: tuple[ServiceDescription, ...] = (
    *SEED_SERVICES,
    *(
        _entity_service(entity)
        for entity in ENTITIES
        if entity.write is not None and entity.command is None
    ),
    GENERIC_SET,
)
SERVICES_BY_NAME: Mapping[str, ServiceDescription] = {s.name: s for s in SERVICES}
assert len(SERVICES_BY_NAME) == len(SERVICES), "service names must be unique"
# Writable entities whose command topic is not their leaf (charging_current is set with
# change_charging_power): a command on the leaf is told where to go.
_SET_ELSEWHERE: Mapping[str, str] = {
    e.key: f"{e.name} is set with cmd/{e.command}"
    for e in ENTITIES
    if e.command is not None and e.command != e.key
}


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
        elsewhere = _SET_ELSEWHERE.get(service_name)
        raise CommandError(
            f"unknown service {service_name!r}" + (f": {elsewhere}" if elsewhere else "")
        )
    payload = parse_payload(raw)
    return Command(service, service.arguments(payload.value), payload.request_id, payload.sent_at)


RETAINED_REFUSAL = "retained command ignored: publish commands without retain"


def parse_delivered(service_name: str, raw: bytes, *, retained: bool) -> Command:
    """A command as the broker delivered it, parsed before it is stored or queued:
    CommandError with the reason for one that could never run."""
    if retained:
        raise CommandError(RETAINED_REFUSAL)
    return parse_command(service_name, raw)
