"""Every entity goe2mqtt exposes, described once.

Discovery, state publishing and command routing all read this table: adding an
entity is adding one EntityDescription. Value functions are pure: they turn a raw
go-e status into one state, return None for "unknown", and raise Unreadable when
the charger sent something that cannot be right (the bridge logs it once).
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any, Literal

Status = Mapping[str, Any]
StateValue = str | int | float | bool | None
ValueFn = Callable[[Status], StateValue]
Component = Literal["sensor", "binary_sensor", "number", "select", "button"]


class Unreadable(ValueError):
    """A raw value that cannot become a state; the message names the key."""


# --- what the go-e codes mean -------------------------------------------------------

CAR_STATES = {
    0: "unknown",
    1: "idle",
    2: "charging",
    3: "waiting_for_car",
    4: "complete",
    5: "error",
    6: "initializing",
}
PHASE_MODES = {0: "auto", 1: "1_phase", 2: "3_phases"}
ACCESS_MODES = {0: "open", 1: "auth_required", 2: "evcms"}
FORCE_STATES = {0: "neutral", 1: "off", 2: "on"}
ERRORS = {
    0: "none",
    1: "fi_ac",
    2: "fi_dc",
    3: "phase",
    4: "overvolt",
    5: "overamp",
    6: "diode",
    7: "pp_invalid",
    8: "gnd_invalid",
    9: "contactor_stuck",
    10: "contactor_missing",
}
CHARGING_REASONS = {
    0: "no_charge_ctrl_data",
    1: "overtemperature",
    2: "access_control_wait",
    3: "force_state_on",
    4: "force_state_off",
    5: "scheduler",
    6: "energy_limit",
    7: "price_low",
    8: "automatic_stop_test_charge",
    9: "automatic_stop_not_enough_time",
    10: "automatic_stop",
    11: "automatic_stop_no_clock",
    12: "pv_surplus",
    13: "fallback_goe_default",
    14: "fallback_goe_scheduler",
    15: "fallback_default",
    16: "fallback_goe_price",
    17: "fallback_price",
    18: "fallback_automatic_stop",
    19: "car_compatibility_keep_alive",
    20: "charge_pause_not_allowed",
    22: "simulate_unplugging",
    23: "phase_switch",
    24: "min_pause_duration",
}
CAR_CONNECTED_STATES = frozenset({2, 3, 4})

# nrg: [U1, U2, U3, UN, I1, I2, I3, P1, P2, P3, PN, Ptotal, pf1, pf2, pf3, pfN], v2 units as-is.
NRG_VOLTAGE = (0, 1, 2)
NRG_CURRENT = (4, 5, 6)
NRG_POWER = (7, 8, 9)
NRG_POWER_TOTAL = 11


# --- value readers ------------------------------------------------------------------


def _field(status: Status, key: str) -> Any:
    if key not in status:
        raise Unreadable(f"{key}: missing from the status")
    return status[key]


# Beyond this an integer loses precision as a float (HA, Node-RED, JavaScript): no
# meter of a wallbox gets there, and 10**400 would not even convert.
MAX_EXACT_INTEGER = 2**53


def _as_number(value: Any, key: str) -> int | float:
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise Unreadable(f"{key}: expected a number, got {type(value).__name__}")
    if isinstance(value, int):
        if abs(value) > MAX_EXACT_INTEGER:
            raise Unreadable(f"{key}: {len(str(abs(value)))}-digit number is out of range")
        return value
    if not math.isfinite(value):
        raise Unreadable(f"{key}: not a finite number")
    return value


def _as_int(value: Any, key: str) -> int:
    number = _as_number(value, key)
    if isinstance(number, float):
        if not number.is_integer():
            raise Unreadable(f"{key}: expected an integer, got {number}")
        return int(number)
    return number


def integer(key: str) -> ValueFn:
    def read(status: Status) -> StateValue:
        value = _field(status, key)
        return None if value is None else _as_int(value, key)

    return read


def number(key: str, *, scale: float = 1.0, digits: int | None = None) -> ValueFn:
    def read(status: Status) -> StateValue:
        value = _field(status, key)
        if value is None:
            return None
        result = _as_number(value, key) * scale
        return round(result, digits) if digits is not None else result

    return read


def flag(key: str) -> ValueFn:
    def read(status: Status) -> StateValue:
        value = _field(status, key)
        if value is None or isinstance(value, bool):
            return value
        raise Unreadable(f"{key}: expected true/false, got {type(value).__name__}")

    return read


def text(key: str) -> ValueFn:
    def read(status: Status) -> StateValue:
        value = _field(status, key)
        if value is None or isinstance(value, str):
            return value
        raise Unreadable(f"{key}: expected a string, got {type(value).__name__}")

    return read


def enum(key: str, names: Mapping[int, str]) -> ValueFn:
    """A code with a closed set of names (an HA enum sensor or select)."""

    def read(status: Status) -> StateValue:
        value = _field(status, key)
        if value is None:
            return None
        code = _as_int(value, key)
        if code not in names:
            raise Unreadable(f"{key}: unknown code {code}")
        return names[code]

    return read


def label(key: str, names: Mapping[int, str]) -> ValueFn:
    """A code whose list grows with firmware: unknown codes show as code_N, not as an error."""

    def read(status: Status) -> StateValue:
        value = _field(status, key)
        if value is None:
            return None
        code = _as_int(value, key)
        return names.get(code, f"code_{code}")

    return read


def element(key: str, index: int, *, digits: int | None = None) -> ValueFn:
    """One number out of an array value such as nrg or tma."""

    def read(status: Status) -> StateValue:
        values = _field(status, key)
        if values is None:
            return None
        if not isinstance(values, list):
            raise Unreadable(f"{key}: expected an array, got {type(values).__name__}")
        if index >= len(values):
            raise Unreadable(f"{key}: has {len(values)} elements, needs {index + 1}")
        if values[index] is None:
            return None
        result = _as_number(values[index], f"{key}[{index}]")
        return round(result, digits) if digits is not None else result

    return read


def car_connected(status: Status) -> StateValue:
    car = integer("car")(status)
    return None if car is None else car in CAR_CONNECTED_STATES


def charger_max_current(status: Status) -> StateValue:
    # What the integration showed: the current the car may draw now, 0 while not allowed.
    allowed = flag("alw")(status)
    if allowed is None:
        return None
    return integer("amp")(status) if allowed else 0


def transaction(status: Status) -> StateValue:
    value = _field(status, "trx")
    if value is None:
        return "none"
    code = _as_int(value, "trx")
    return "no_card" if code == 0 else f"card_{code - 1}"


# --- the catalogue ------------------------------------------------------------------


@dataclass(frozen=True, kw_only=True)
class EntityDescription:
    key: str  # topic leaf, unique_id suffix and key in the JSON state
    component: Component
    name: str
    reads: tuple[str, ...] = ()  # go-e keys the value needs (the status filter)
    value: ValueFn | None = None  # None: the entity has no state (a button)
    device_class: str | None = None
    state_class: str | None = None
    unit: str | None = None
    entity_category: Literal["diagnostic", "config"] | None = None
    icon: str | None = None
    options: tuple[str, ...] = ()
    precision: int | None = None
    enabled_by_default: bool = True
    command: str | None = None  # the service its command topic runs
    needs_car: bool = False  # unavailable while no car is connected
    limits: tuple[str, str] | None = None  # number: go-e keys of min and max


def _phase_entities(prefix: str, name: str, indices: tuple[int, ...], **kw: Any) -> list[Any]:
    return [
        EntityDescription(
            key=f"{prefix}_l{n}",
            name=f"{name} L{n}",
            value=element("nrg", index, digits=2),
            reads=("nrg",),
            **kw,
        )
        for n, index in enumerate(indices, start=1)
    ]


ENTITIES: tuple[EntityDescription, ...] = (
    # The nine sensors users of the "go-e Charger Cloud" integration know.
    EntityDescription(
        key="car_status",
        component="sensor",
        name="Car status",
        reads=("car",),
        value=enum("car", CAR_STATES),
        device_class="enum",
        options=tuple(CAR_STATES.values()),
        icon="mdi:car-electric",
    ),
    EntityDescription(
        key="charging_allowed",
        component="binary_sensor",
        name="Charging allowed",
        reads=("alw",),
        value=flag("alw"),
        icon="mdi:ev-station",
    ),
    EntityDescription(
        key="charger_max_current",
        component="sensor",
        name="Charger max current",
        reads=("alw", "amp"),
        value=charger_max_current,
        device_class="current",
        state_class="measurement",
        unit="A",
    ),
    EntityDescription(
        key="energy_since_car_connected",
        component="sensor",
        name="Energy since car connected",
        reads=("wh",),
        value=number("wh", scale=0.001, digits=2),
        device_class="energy",
        state_class="total_increasing",
        unit="kWh",
        precision=2,
    ),
    EntityDescription(
        key="energy_total",
        component="sensor",
        name="Energy total",
        reads=("eto",),
        value=number("eto", scale=0.001, digits=2),
        device_class="energy",
        state_class="total_increasing",
        unit="kWh",
        precision=2,
    ),
    EntityDescription(
        key="phase_switch_mode",
        component="sensor",
        name="Phase switch mode",
        reads=("psm",),
        value=enum("psm", PHASE_MODES),
        device_class="enum",
        options=tuple(PHASE_MODES.values()),
        icon="mdi:sine-wave",
    ),
    EntityDescription(
        key="phases_number_connected",
        component="sensor",
        name="Phases number connected",
        reads=("pnp",),
        value=integer("pnp"),
        state_class="measurement",
        icon="mdi:numeric",
    ),
    EntityDescription(
        key="charger_access",
        component="sensor",
        name="Charger access",
        reads=("acs",),
        value=enum("acs", ACCESS_MODES),
        device_class="enum",
        options=tuple(ACCESS_MODES.values()),
        icon="mdi:lock-outline",
    ),
    EntityDescription(
        key="name",
        component="sensor",
        name="Name",
        reads=("fna",),
        value=text("fna"),
        entity_category="diagnostic",
        icon="mdi:label-outline",
    ),
    # What a wallbox owner expects beside them.
    EntityDescription(
        key="car_connected",
        component="binary_sensor",
        name="Car connected",
        reads=("car",),
        value=car_connected,
        device_class="plug",
    ),
    EntityDescription(
        key="charging_power",
        component="sensor",
        name="Charging power",
        reads=("nrg",),
        value=element("nrg", NRG_POWER_TOTAL, digits=1),
        device_class="power",
        state_class="measurement",
        unit="W",
    ),
    *_phase_entities(
        "power",
        "Power",
        NRG_POWER,
        component="sensor",
        device_class="power",
        state_class="measurement",
        unit="W",
        enabled_by_default=False,
    ),
    *_phase_entities(
        "current",
        "Current",
        NRG_CURRENT,
        component="sensor",
        device_class="current",
        state_class="measurement",
        unit="A",
    ),
    *_phase_entities(
        "voltage",
        "Voltage",
        NRG_VOLTAGE,
        component="sensor",
        device_class="voltage",
        state_class="measurement",
        unit="V",
    ),
    EntityDescription(
        key="error",
        component="sensor",
        name="Error",
        reads=("err",),
        value=label("err", ERRORS),
        icon="mdi:alert-circle-outline",
    ),
    EntityDescription(
        key="charging_reason",
        component="sensor",
        name="Charging reason",
        reads=("modelStatus",),
        value=label("modelStatus", CHARGING_REASONS),
        entity_category="diagnostic",
        icon="mdi:information-outline",
    ),
    EntityDescription(
        key="force_state",
        component="sensor",
        name="Force state",
        reads=("frc",),
        value=enum("frc", FORCE_STATES),
        device_class="enum",
        options=tuple(FORCE_STATES.values()),
        entity_category="diagnostic",
    ),
    EntityDescription(
        key="transaction",
        component="sensor",
        name="Transaction",
        reads=("trx",),
        value=transaction,
        entity_category="diagnostic",
        icon="mdi:card-account-details-outline",
    ),
    EntityDescription(
        key="temperature",
        component="sensor",
        name="Temperature",
        reads=("tma",),
        value=element("tma", 0, digits=1),
        device_class="temperature",
        state_class="measurement",
        unit="°C",
        entity_category="diagnostic",
    ),
    EntityDescription(
        key="wifi_signal",
        component="sensor",
        name="WiFi signal",
        reads=("rssi",),
        value=integer("rssi"),
        device_class="signal_strength",
        state_class="measurement",
        unit="dBm",
        entity_category="diagnostic",
    ),
    EntityDescription(
        key="firmware",
        component="sensor",
        name="Firmware",
        reads=("fwv",),
        value=text("fwv"),
        entity_category="diagnostic",
        icon="mdi:chip",
    ),
    # Controls: they command through the same services as the command topics.
    EntityDescription(
        key="wallbox_control",
        component="button",
        name="Wallbox control",
        command="wallbox_control",
        needs_car=True,
        icon="mdi:ev-plug-type2",
    ),
    EntityDescription(
        key="charging_current",
        component="number",
        name="Charging current",
        reads=("amp",),
        value=integer("amp"),
        device_class="current",
        unit="A",
        command="change_charging_power",
        needs_car=True,
        limits=("mca", "ama"),
        icon="mdi:current-ac",
    ),
    EntityDescription(
        key="phase_mode",
        component="select",
        name="Phase mode",
        reads=("psm",),
        value=enum("psm", PHASE_MODES),
        options=tuple(PHASE_MODES.values()),
        command="set_phase",
        entity_category="config",
        icon="mdi:sine-wave",
    ),
)

ENTITIES_BY_KEY: Mapping[str, EntityDescription] = {e.key: e for e in ENTITIES}
# The entities with a state (a button has none): each has its own state topic.
STATE_ENTITIES: tuple[EntityDescription, ...] = tuple(e for e in ENTITIES if e.value is not None)

# Keys that describe the device rather than an entity (device registry, number limits).
DEVICE_KEYS = ("typ", "fwv", "sse", "mca", "ama")
# Keys commands need to decide (car state for the button, limits for the current).
COMMAND_KEYS = ("car", "mca", "ama")

STATUS_KEYS: frozenset[str] = (
    frozenset(key for entity in ENTITIES for key in entity.reads)
    | frozenset(DEVICE_KEYS)
    | frozenset(COMMAND_KEYS)
)


def read_states(status: Status) -> tuple[dict[str, StateValue], dict[str, str]]:
    """Every entity's state from one status, and why the unreadable ones are unknown."""
    states: dict[str, StateValue] = {}
    problems: dict[str, str] = {}
    for entity in STATE_ENTITIES:
        assert entity.value is not None
        try:
            states[entity.key] = entity.value(status)
        except Unreadable as exc:
            states[entity.key] = None
            problems[entity.key] = str(exc)
        except Exception as exc:  # one odd value must not stop the others
            states[entity.key] = None
            problems[entity.key] = f"{', '.join(entity.reads)}: {type(exc).__name__}"
    return states, problems


UNKNOWN = "null"


def format_state(value: StateValue) -> str:
    """The plain text on a state topic: JSON's null for unknown, which Node-RED (and
    any JSON reader) parses as null; discovery's value_template turns it into the
    "None" that Home Assistant reads as unknown."""
    if value is None:
        return UNKNOWN
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, float):
        return repr(int(value)) if value.is_integer() else repr(value)
    return str(value)
