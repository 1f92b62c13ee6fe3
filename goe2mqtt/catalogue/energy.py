"""Energy and power: counters in kWh, power, current and voltage per phase (nrg)."""

from __future__ import annotations

from typing import Any

from goe2mqtt.catalogue.codes import (
    NRG_CURRENT,
    NRG_POWER,
    NRG_POWER_FACTOR,
    NRG_POWER_TOTAL,
    NRG_VOLTAGE,
)
from goe2mqtt.catalogue.model import EntityDescription, StateValue, Status, Write
from goe2mqtt.catalogue.readers import element, number


def _limit_active(status: Status) -> StateValue:
    return number("dwo")(status) is not None


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


ENERGY: tuple[EntityDescription, ...] = (
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
        key="energy_total_persisted",
        component="sensor",
        name="Energy total persisted",
        reads=("etop",),
        value=number("etop", scale=0.001, digits=2),
        device_class="energy",
        state_class="total_increasing",
        unit="kWh",
        precision=2,
        entity_category="diagnostic",
        enabled_by_default=False,
        doc="the total as last saved to flash (eto is live)",
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
    EntityDescription(
        key="power_average_30_s",
        component="sensor",
        name="Power average 30 s",
        reads=("tpa",),
        value=number("tpa", digits=1),
        device_class="power",
        state_class="measurement",
        unit="W",
        enabled_by_default=False,
        entity_category="diagnostic",
    ),
    EntityDescription(
        key="energy_limit",
        component="number",
        name="Energy limit",
        reads=("dwo",),
        value=number("dwo", scale=0.001, digits=2),
        device_class="energy",
        unit="kWh",
        write=Write(
            key="dwo",
            kind="number",
            minimum=0.1,
            maximum=1000,
            step=0.1,
            scale=1000,
            null_means="no limit",
            unit_hint="Wh",
        ),
        entity_category="config",
        icon="mdi:battery-charging-high",
        doc="stop after this much energy; unknown (null) while off - send null or off to clear",
    ),
    EntityDescription(
        key="energy_limit_active",
        component="switch",
        name="Energy limit active",
        reads=("dwo",),
        value=_limit_active,
        write=Write(
            key="dwo",
            kind="switch",
            on=None,
            off=None,
            turn_on="set energy_limit to a value to turn the limit on",
        ),
        entity_category="config",
        icon="mdi:battery-lock",
        doc="off when no energy limit is set (dwo null); turning it off clears the limit",
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
        "power_factor",
        "Power factor",
        NRG_POWER_FACTOR,
        component="sensor",
        entity_category="diagnostic",
        device_class="power_factor",
        state_class="measurement",
        unit="%",
        enabled_by_default=False,
    ),
    EntityDescription(
        key="max_measured_power",
        component="sensor",
        name="Max measured power",
        reads=("mmp",),
        value=number("mmp", digits=1),
        device_class="power",
        state_class="measurement",
        unit="W",
        entity_category="diagnostic",
        enabled_by_default=False,
        doc="the highest charging power seen (next trip planning)",
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
)
