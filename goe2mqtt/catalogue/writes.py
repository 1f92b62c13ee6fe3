"""Writing: a payload value -> the value go-e gets, checked against the entity's Write.

Pure. Every check happens here, before any call to the charger: type, range (the
declared one, or the one the charger's state sets now), allowed choices. Values come
in the entity's unit (what its state topic shows: kWh, "07:30", "on") or, through
the generic set command, in go-e's own unit (Wh, seconds, codes).
"""

from __future__ import annotations

import math
import re
from typing import Any, Literal

from goe2mqtt.catalogue.model import Invalid, Status, Write
from goe2mqtt.util.numbers import finite_number, is_number, lenient_number
from goe2mqtt.util.text import fold, has_control

Unit = Literal["entity", "goe"]

_ON_WORDS = frozenset({"on", "true", "yes", "enable", "enabled", "1"})
_OFF_WORDS = frozenset({"off", "false", "no", "disable", "disabled", "0"})
_NULL_WORDS = frozenset({"off", "none", "null", "disabled", ""})
_TIME = re.compile(r"^([01]?\d|2[0-3]):([0-5]\d)(?::([0-5]\d))?$")


word = fold  # what people type, folded (the catalogue's name for it)


def to_goe(
    write: Write,
    value: Any,
    status: Status,
    *,
    name: str,
    unit: Unit = "entity",
    label: str | None = None,
) -> Any:
    """The go-e value for one payload value; Invalid says why not. `label` is the
    entity's unit, for messages."""
    if write.kind == "press":
        return write.press
    if write.kind == "number":
        return _number(write, value, status, name=name, unit=unit, label=label)
    if write.kind == "switch":
        return _switch(write, value, name=name, unit=unit)
    if write.kind == "select":
        return _select(write, value, status, name=name)
    if write.kind == "time":
        return _time(value, name=name, unit=unit)
    return _text(write, value, name=name)


def number_range(write: Write, status: Status) -> tuple[float, float, str]:
    """The range a number accepts now, in the entity's unit, and what limits it."""
    if write.bounds is not None:
        return write.bounds(status)
    low = write.minimum if write.minimum is not None else -math.inf
    high = write.maximum if write.maximum is not None else math.inf
    return low, high, ""


def _plain(number: float) -> float | int:
    return int(number) if float(number).is_integer() else number


def _number(
    write: Write, value: Any, status: Status, *, name: str, unit: Unit, label: str | None
) -> Any:
    if write.null_means is not None and (
        value is None or (isinstance(value, str) and word(value) in _NULL_WORDS)
    ):
        return None
    nullable = f", or null ({write.null_means})" if write.null_means else ""
    value = finite_number(lenient_number(value))
    if value is None:
        raise Invalid(f"{name} must be a number{nullable}")
    in_entity_unit = value / write.scale if unit == "goe" else value
    low, high, why = number_range(write, status)
    if not low <= in_entity_unit <= high:
        scale = 1.0 if unit == "entity" else write.scale
        same_unit = unit == "entity" or write.scale == 1
        shown_unit = (label if same_unit else write.unit_hint) or ""
        limit = f" ({why})" if why and in_entity_unit > high else ""
        raise Invalid(
            f"{name} must be between {_plain(low * scale)} and {_plain(high * scale)}"
            f"{' ' + shown_unit if shown_unit else ''}{limit}, got {_plain(value)}"
        )
    exact = in_entity_unit * write.scale
    goe = round(exact, 6)
    if write.integer:
        # Only the float's own error in the scale is taken away (0.3 kWh * 1000 is
        # 300.00000000000006 Wh): rounded to 6 digits, 6.0000000001 A and 7.999999999 A
        # were sent as 6 and 8 A, where change_charging_power refuses them as no integer.
        whole = round(exact)
        if not math.isclose(exact, whole, rel_tol=1e-12):
            raise Invalid(f"{name} must be a whole number, got {_plain(value)}")
        return int(whole)
    return _plain(goe)


def _switch(write: Write, value: Any, *, name: str, unit: Unit) -> Any:
    goe = _switch_value(write, value, name=name, unit=unit)
    if write.turn_on is not None and goe is write.on and _is_on(value):
        raise Invalid(f"{name}: {write.turn_on}")
    return goe


def _is_on(value: Any) -> bool:
    if isinstance(value, str):
        return word(value) in _ON_WORDS
    return value is True or (is_number(value) and value == 1)


def _switch_value(write: Write, value: Any, *, name: str, unit: Unit) -> Any:
    # go-e's own value, as the generic set sends it (e.g. 1/2 for some switches);
    # a switch that is a bool on the wire never gets a number (1 == True in Python).
    if (
        unit == "goe"
        and not isinstance(value, bool)
        and not isinstance(write.on, bool)
        and (value in (write.on, write.off))
    ):
        return value
    if isinstance(value, bool):
        return write.on if value else write.off
    if is_number(value) and value in (0, 1):
        return write.on if value == 1 else write.off
    if isinstance(value, str):
        folded = word(value)
        if folded in _ON_WORDS:
            return write.on
        if folded in _OFF_WORDS:
            return write.off
    raise Invalid(f"{name} must be on or off (true/false)")


def _select(write: Write, value: Any, status: Status, *, name: str) -> Any:
    choices = write.choices_for(status)
    if isinstance(value, str):
        folded = word(value)
        if folded in ("none", "null") and None in choices:
            return None
        for code, option in choices.items():
            if word(option) == folded:
                return code
    elif not isinstance(value, bool) and (value is None or is_number(value)):
        for code in choices:
            if code == value and not isinstance(code, bool):
                return code
    shown = repr(value)[:40]
    raise Invalid(f"{name} must be one of {', '.join(choices.values())}; got {shown}")


def seconds_of_day(text: str) -> int | None:
    match = _TIME.match(text.strip())
    if match is None:
        return None
    hours, minutes, seconds = (int(part or 0) for part in match.groups())
    return hours * 3600 + minutes * 60 + seconds


def _time(value: Any, *, name: str, unit: Unit) -> int:
    if isinstance(value, str):
        seconds = seconds_of_day(value)
        if seconds is not None:
            return seconds
    elif (
        (number := finite_number(value)) is not None
        and float(number).is_integer()
        and (0 <= number < 86_400)
    ):
        return int(value)
    raise Invalid(f"{name} must be a time of day as HH:MM (or seconds since midnight)")


def _text(write: Write, value: Any, *, name: str) -> str:
    if not isinstance(value, str):
        raise Invalid(f"{name} must be text")
    if has_control(value):
        raise Invalid(f"{name} must not contain control characters")
    if len(value) > write.max_length:
        raise Invalid(f"{name} must be at most {write.max_length} characters")
    return value
