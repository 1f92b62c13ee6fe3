"""Grid meter payloads: three forms, and every hostile value refused with a reason.

``{"l1": A, "l2": A, "l3": A}`` (currents per phase; positive = import),
``{"power": W}`` (positive = import) or a plain number (W). A reading that cannot be
trusted is refused, never clipped: the controller then falls back, since a wrong
reading is worse than none.
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass
from typing import Any

from goe2mqtt.util.numbers import describe, finite_number

PHASES = ("l1", "l2", "l3")
MAX_PAYLOAD = 1024  # bytes: a meter reading is a few dozen
MAX_CURRENT = 1000.0  # A: beyond any house connection; a wrong reading
MAX_POWER = 1_000_000.0  # W


class MeterInvalid(ValueError):
    """A meter payload the controller must not act on; the text says why."""


@dataclass(frozen=True)
class MeterReading:
    """What the grid meter measured, import positive. Either or both forms."""

    currents: tuple[float, float, float] | None = None  # A per phase
    power: float | None = None  # W in all

    def as_json(self) -> dict[str, Any]:
        shown: dict[str, Any] = {}
        if self.currents is not None:
            shown.update(zip(PHASES, (round(i, 2) for i in self.currents), strict=True))
        if self.power is not None:
            shown["power"] = round(self.power)
        return shown


def parse_meter(payload: bytes, *, exports: bool) -> MeterReading:
    """The reading in a payload, or MeterInvalid. ``exports``: negative values are
    export (a meter that measures both ways); without it a negative value is wrong."""
    if len(payload) > MAX_PAYLOAD:
        raise MeterInvalid(f"payload of {len(payload)} bytes (a reading is a few dozen)")
    try:
        value = json.loads(payload)
    except (ValueError, RecursionError):
        raise MeterInvalid('not JSON: a number (W), {"power": W} or {"l1", "l2", "l3"}') from None
    if isinstance(value, dict):
        return _from_object(value, exports)
    return MeterReading(power=_number("reading", value, MAX_POWER, exports))


def _from_object(value: dict[str, Any], exports: bool) -> MeterReading:
    given = [p for p in PHASES if p in value]
    if given and len(given) != len(PHASES):
        missing = ", ".join(p for p in PHASES if p not in value)
        raise MeterInvalid(f"{missing} missing: give the current of every phase")
    if not given and "power" not in value:
        raise MeterInvalid("neither l1, l2, l3 (A) nor power (W) in the reading")
    currents = None
    if given:
        l1, l2, l3 = (_number(p, value[p], MAX_CURRENT, exports) for p in PHASES)
        currents = (l1, l2, l3)
    power = None
    if "power" in value:
        power = _number("power", value["power"], MAX_POWER, exports)
    return MeterReading(currents=currents, power=power)


def _number(name: str, raw: Any, limit: float, exports: bool) -> float:
    number = finite_number(raw)
    if number is None:
        raise MeterInvalid(f"{name}: {describe(raw)} is not a finite number")
    value = float(number)
    if not math.isfinite(value) or abs(value) > limit:
        raise MeterInvalid(f"{name}: {describe(raw)} is beyond {limit:g}: not a real reading")
    if value < 0 and not exports:
        raise MeterInvalid(
            f"{name}: {describe(raw)} is negative, and this meter measures import only"
            " (meter_exports: true for one that measures both ways)"
        )
    return value
