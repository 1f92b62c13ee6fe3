"""The cable lock: its setting, what the charger does with it, and how that went."""

from __future__ import annotations

from goe2mqtt.catalogue.codes import (
    CABLE_UNLOCK_STATES,
    LOCK_FEEDBACK,
    LOCK_STATES,
    UNLOCK_SETTINGS,
)
from goe2mqtt.catalogue.model import EntityDescription, Write
from goe2mqtt.catalogue.readers import enum, flag, label

CABLE: tuple[EntityDescription, ...] = (
    EntityDescription(
        key="cable_unlock",
        component="select",
        name="Cable unlock",
        reads=("ust",),
        value=enum("ust", UNLOCK_SETTINGS),
        options=tuple(UNLOCK_SETTINGS.values()),
        write=Write(key="ust", kind="select", choices=UNLOCK_SETTINGS),
        entity_category="config",
        icon="mdi:lock-outline",
        doc="normal (unlock when the car unlocks), auto_unlock (after charging), always_locked",
    ),
    EntityDescription(
        key="cable_lock",
        component="sensor",
        name="Cable lock",
        reads=("lck",),
        value=label("lck", LOCK_STATES),
        entity_category="diagnostic",
        icon="mdi:lock",
        doc="the lock mode in effect (force_unlock after a power outage)",
    ),
    EntityDescription(
        key="cable_unlock_status",
        component="sensor",
        name="Cable unlock status",
        reads=("cus",),
        value=label("cus", CABLE_UNLOCK_STATES),
        entity_category="diagnostic",
        icon="mdi:lock-question",
    ),
    EntityDescription(
        key="lock_feedback",
        component="sensor",
        name="Lock feedback",
        reads=("ffb",),
        value=label("ffb", LOCK_FEEDBACK),
        entity_category="diagnostic",
        enabled_by_default=False,
    ),
    EntityDescription(
        key="unlock_on_power_outage",
        component="switch",
        name="Unlock on power outage",
        reads=("upo",),
        value=flag("upo"),
        write=Write(key="upo", kind="switch"),
        entity_category="config",
        icon="mdi:power-plug-off-outline",
        doc="only on models that have it",
    ),
)
