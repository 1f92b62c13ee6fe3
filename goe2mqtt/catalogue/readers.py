"""Value readers: a raw go-e status -> one state.

Pure. Each returns None for "unknown" (go-e's null) and raises Unreadable, naming the
key, when the charger sent something that cannot be right.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from typing import Any

from goe2mqtt.catalogue.codes import CAR_CONNECTED_STATES
from goe2mqtt.catalogue.model import StateValue, Status, Unreadable, ValueFn


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
