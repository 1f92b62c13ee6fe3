"""Limits: what caps the current, and the settings that do.

current_bounds() is the real ceiling of the charging current: the charging current
number shows it as its max, and a set above it is refused with what limits it.
"""

from __future__ import annotations

from typing import Any

from goe2mqtt.catalogue.model import PLAUSIBLE, Bounds, EntityDescription, Status, Write
from goe2mqtt.catalogue.readers import flag, integer

# go-e hardware range, for when the charger has not told us its own limits.
FALLBACK_CURRENT_RANGE = (6, 32)
ADAPTER_LIMIT = 16  # A, with the 16 A adapter
VARIANT_MAX = {11: 16, 22: 32}  # variant (kW) -> its highest current
MAX_AMPS = int(PLAUSIBLE["A"][1])  # beyond what a charger measures: garbage, not a limit


def _amps(status: Status, key: str) -> int | None:
    """A current limit the charger says, or None when it says none or garbage: a
    negative one, or one no charger has (a 400-digit integer JSON reads, which no float
    holds, would stop every sum it entered - the site's sharing among them). A whole
    float is its integer, as the catalogue reads it (cbl 20.0 shows as 20 in Home
    Assistant, and was no limit here)."""
    value: Any = status.get(key)
    if isinstance(value, float) and value.is_integer():
        value = int(value)
    if isinstance(value, int) and not isinstance(value, bool) and 0 <= value <= MAX_AMPS:
        return value
    return None


def current_bounds(status: Status) -> Bounds:
    """(min, max, what sets max) for the requested current, from what the charger says."""
    low = _amps(status, "mca") or FALLBACK_CURRENT_RANGE[0]
    ceilings: list[tuple[int, str]] = []
    ama = _amps(status, "ama")
    ceilings.append((ama, "max current setting") if ama else (FALLBACK_CURRENT_RANGE[1], ""))
    cable = _amps(status, "cbl")
    if cable:
        ceilings.append((cable, "cable limit"))
    if status.get("adi") is True:
        ceilings.append((ADAPTER_LIMIT, "16 A adapter"))
    temperature = _amps(status, "amt")
    if temperature is not None:
        ceilings.append((temperature, "temperature limit"))
    high, why = min(ceilings, key=lambda ceiling: ceiling[0])
    return low, max(low, high), (f"{why} {high} A" if why else "")


def _max_current_bounds(status: Status) -> Bounds:
    variant = _amps(status, "var")
    high = VARIANT_MAX.get(variant or 0, FALLBACK_CURRENT_RANGE[1])
    return FALLBACK_CURRENT_RANGE[0], high, (f"{variant} kW variant" if variant else "")


def _min_current_bounds(status: Status) -> Bounds:
    high = _amps(status, "ama") or FALLBACK_CURRENT_RANGE[1]
    return FALLBACK_CURRENT_RANGE[0], high, "max current setting"


LIMITS: tuple[EntityDescription, ...] = (
    EntityDescription(
        key="max_current",
        component="number",
        name="Max current",
        reads=("ama",),
        value=integer("ama"),
        device_class="current",
        unit="A",
        write=Write(key="ama", kind="number", integer=True, bounds=_max_current_bounds),
        entity_category="config",
        icon="mdi:current-ac",
        doc="the ceiling of the charging current (up to 16 or 32 A by variant)",
    ),
    EntityDescription(
        key="min_current",
        component="number",
        name="Min current",
        reads=("mca",),
        value=integer("mca"),
        device_class="current",
        unit="A",
        write=Write(key="mca", kind="number", integer=True, bounds=_min_current_bounds),
        entity_category="config",
        enabled_by_default=False,
    ),
    EntityDescription(
        key="temporary_current_limit",
        component="number",
        name="Temporary current limit",
        reads=("tcl",),
        value=integer("tcl"),
        device_class="current",
        unit="A",
        write=Write(
            key="tcl", kind="number", integer=True, bounds=current_bounds,
            null_means="no temporary limit",
        ),
        entity_category="config",
        enabled_by_default=False,
        icon="mdi:timer-sand",
        doc="the charger drops it after 10 min unless it is written again; null clears it",
    ),
    EntityDescription(
        key="allowed_current",
        component="sensor",
        name="Allowed current",
        reads=("acu",),
        value=integer("acu"),
        device_class="current",
        state_class="measurement",
        unit="A",
        doc="what the car may draw now, after every limit",
        entity_category="diagnostic",
    ),
    EntityDescription(
        key="cable_current_limit",
        component="sensor",
        name="Cable current limit",
        reads=("cbl",),
        value=integer("cbl"),
        device_class="current",
        unit="A",
        entity_category="diagnostic",
    ),
    EntityDescription(
        key="adapter_16_a",
        component="binary_sensor",
        name="Adapter 16 A",
        reads=("adi",),
        value=flag("adi"),
        entity_category="diagnostic",
        icon="mdi:power-plug-outline",
    ),
    EntityDescription(
        key="variant",
        component="sensor",
        name="Variant",
        reads=("var",),
        value=integer("var"),
        device_class="power",  # the rated power: HA takes kW for power
        unit="kW",
        entity_category="diagnostic",
        icon="mdi:flash-outline",
        doc="11 (16 A) or 22 (32 A)",
    ),
    EntityDescription(
        key="temperature_current_limit",
        component="sensor",
        name="Temperature current limit",
        reads=("amt",),
        value=integer("amt"),
        device_class="current",
        unit="A",
        entity_category="diagnostic",
        enabled_by_default=False,
    ),
)  # fmt: skip
