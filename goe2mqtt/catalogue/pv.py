"""Eco and PV surplus: price and PV settings, the meter values they use, and our PV feed.

The feed entities read added keys (@pv_...): what the bridge last fed the charger
through ids and how that went (pv_feed.py); the charger's own view of the same
values is pgrid/ppv/pakku, which is how a feed is confirmed.
"""

from __future__ import annotations

from collections.abc import Set

from goe2mqtt.catalogue.codes import ROUNDING_MODES
from goe2mqtt.catalogue.model import EntityDescription, Write, key_of
from goe2mqtt.catalogue.readers import enum, flag, number, text

FEED_STATES = ("off", "sending", "confirmed", "not_applied", "stale", "failed")
# The added keys of the feed entities while nothing is fed.
FEED_OFF = {"@pv_feed": "off", "@pv_grid": None, "@pv_solar": None, "@pv_battery": None}
MAX_POWER = 1_000_000.0  # W: no house meter reads more; beyond is a unit mistake


def _takes_feed(keys: Set[str]) -> bool:
    # Firmware that takes ids reports what it got as pgrid; older firmware has neither.
    return "pgrid" in keys


def _power_setting(
    key: str, name: str, *, low: float = 0, doc: str = "", enabled: bool = True
) -> EntityDescription:
    return EntityDescription(
        key=key_of(name),
        component="number",
        name=name,
        reads=(key,),
        value=number(key, digits=1),
        device_class="power",
        unit="W",
        write=Write(key=key, kind="number", minimum=low, maximum=100_000, step=1),
        entity_category="config",
        enabled_by_default=enabled,
        doc=doc,
    )


def _measured(key: str, name: str, doc: str) -> EntityDescription:
    return EntityDescription(
        key=key_of(name),
        component="sensor",
        name=name,
        reads=(key,),
        value=number(key, digits=1),
        device_class="power",
        state_class="measurement",
        unit="W",
        entity_category="diagnostic",
        doc=doc,
    )


def _feed_input(command: str, name: str, low: float, doc: str) -> EntityDescription:
    return EntityDescription(
        key=key_of(name),
        component="number",
        name=name,
        reads=(f"@{command}",),
        value=number(f"@{command}", digits=1),
        device_class="power",
        unit="W",
        command=command,
        write=Write(key="ids", kind="number", minimum=low, maximum=MAX_POWER, read_back=False),
        present_if=_takes_feed,
        entity_category="config",
        icon="mdi:solar-power-variant",
        doc=doc,
    )


PV: tuple[EntityDescription, ...] = (
    EntityDescription(
        key="use_pv_surplus",
        component="switch",
        name="Use PV surplus",
        reads=("fup",),
        value=flag("fup"),
        write=Write(key="fup", kind="switch"),
        entity_category="config",
        icon="mdi:solar-power",
        doc="charge from surplus (in eco logic mode)",
    ),
    EntityDescription(
        key="zero_feed_in",
        component="switch",
        name="Zero feed-in",
        reads=("fzf",),
        value=flag("fzf"),
        write=Write(key="fzf", kind="switch"),
        entity_category="config",
        enabled_by_default=False,
    ),
    _power_setting("pgt", "Grid target", low=-100_000,
                   doc="the grid power PV charging aims for; negative = keep exporting"),
    _power_setting("fst", "Starting power", doc="surplus needed before charging starts"),
    _power_setting("spl3", "Three phase switch level",
                   doc="above this power the charger switches to 3 phases"),
    _power_setting("psh", "Phase switch hysteresis", enabled=False),
    _power_setting("sh", "Stop hysteresis", enabled=False),
    _power_setting("zfo", "Zero feed-in offset", low=-100_000, enabled=False),
    EntityDescription(
        key="rounding_mode",
        component="select",
        name="Rounding mode",
        reads=("frm",),
        value=enum("frm", ROUNDING_MODES),
        options=tuple(ROUNDING_MODES.values()),
        write=Write(key="frm", kind="select", choices=ROUNDING_MODES),
        entity_category="config",
        enabled_by_default=False,
        doc="between two current steps: prefer grid power or prefer feeding in",
    ),
    EntityDescription(
        key="use_flexible_tariff",
        component="switch",
        name="Use flexible tariff",
        reads=("awe",),
        value=flag("awe"),
        write=Write(key="awe", kind="switch"),
        entity_category="config",
        icon="mdi:cash-clock",
        doc="eco mode: charge while the price is below the max price",
    ),
    EntityDescription(
        key="max_price",
        component="number",
        name="Max price",
        reads=("awp",),
        value=number("awp", digits=2),
        unit="ct/kWh",
        write=Write(key="awp", kind="number", minimum=-100, maximum=1000, step=0.1),
        entity_category="config",
        icon="mdi:cash",
    ),
    _measured("pgrid", "Grid power", "what the charger knows of the grid (fed by ids)"),
    _measured("ppv", "PV power", "what the charger knows of the PV (fed by ids)"),
    _measured("pakku", "Battery power", "what the charger knows of the battery (fed by ids)"),
    EntityDescription(
        key="pv_feed",
        component="sensor",
        name="PV feed",
        reads=("@pv_feed",),
        value=text("@pv_feed"),
        device_class="enum",
        options=FEED_STATES,
        present_if=_takes_feed,
        entity_category="diagnostic",
        icon="mdi:transmission-tower-import",
        doc="off, sending, confirmed (charger shows it), not_applied, stale (source quiet), "
        "failed",
    ),
    _feed_input("pv_grid", "PV feed grid power", -MAX_POWER,
                "your meter's grid power for the charger (negative = export)"),
    _feed_input("pv_solar", "PV feed solar power", 0, "your PV power for the charger"),
    _feed_input("pv_battery", "PV feed battery power", -MAX_POWER,
                "your battery power for the charger"),
)  # fmt: skip
