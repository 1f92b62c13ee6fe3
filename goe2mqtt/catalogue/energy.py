"""Energy and power: counters in kWh, power, current and voltage per phase (nrg)."""

from __future__ import annotations

from typing import Any

from goe2mqtt.catalogue.codes import NRG_CURRENT, NRG_POWER, NRG_POWER_TOTAL, NRG_VOLTAGE
from goe2mqtt.catalogue.model import EntityDescription
from goe2mqtt.catalogue.readers import element, number


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
)
