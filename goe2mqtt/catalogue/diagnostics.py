"""Diagnostics: what the charger says about itself and its health."""

from __future__ import annotations

from goe2mqtt.catalogue.codes import CHARGING_REASONS, ERRORS
from goe2mqtt.catalogue.model import EntityDescription
from goe2mqtt.catalogue.readers import element, integer, label, text

DIAGNOSTICS: tuple[EntityDescription, ...] = (
    EntityDescription(
        key="name",
        component="sensor",
        name="Name",
        reads=("fna",),
        value=text("fna"),
        entity_category="diagnostic",
        icon="mdi:label-outline",
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
)
