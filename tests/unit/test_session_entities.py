"""The ledger's entities (catalogue/session.py) pinned as they are: the same unique ids
(keys), names, added keys read, units, classes and order, whichever way the module
builds them; and what their functions make of a status."""

from __future__ import annotations

import dataclasses
from typing import Any

from goe2mqtt.catalogue.model import EntityDescription
from goe2mqtt.catalogue.session import SESSION

# Every card slot's name key: a card's entity is named after its card alone.
CARD_NAMES = ("c0n", "c1n", "c2n", "c3n", "c4n", "c5n", "c6n", "c7n", "c8n", "c9n", "cards")
_DEFAULTS = {
    f.name: f.default
    for f in dataclasses.fields(EntityDescription)
    if f.default is not dataclasses.MISSING
}

EXPECTED: list[dict[str, Any]] = [
    {
        "key": "session_energy",
        "component": "sensor",
        "name": "Session energy",
        "reads": ("@session_energy",),
        "device_class": "energy",
        "state_class": "total_increasing",
        "unit": "kWh",
        "entity_category": "diagnostic",
        "icon": "mdi:ev-station",
        "precision": 2,
        "doc": "the open session's (else the last one's), from eto",
    },
    {
        "key": "session_cost",
        "component": "sensor",
        "name": "Session cost",
        "reads": ("@session_cost",),
        "device_class": "monetary",
        "state_class": "total",
        "unit": "EUR",
        "entity_category": "diagnostic",
        "icon": "mdi:cash",
        "precision": 2,
        "doc": "the open session's so far, at each interval's price",
        "plausible": (-1000000000.0, 1000000000.0),
    },
    {
        "key": "last_session_energy",
        "component": "sensor",
        "name": "Last session energy",
        "reads": ("@last_session_energy",),
        "device_class": "energy",
        "unit": "kWh",
        "entity_category": "diagnostic",
        "icon": "mdi:ev-station",
        "precision": 2,
    },
    {
        "key": "last_session_cost",
        "component": "sensor",
        "name": "Last session cost",
        "reads": ("@last_session_cost",),
        "device_class": "monetary",
        "unit": "EUR",
        "entity_category": "diagnostic",
        "icon": "mdi:cash",
        "precision": 2,
        "plausible": (-1000000000.0, 1000000000.0),
    },
    {
        "key": "last_session_duration",
        "component": "sensor",
        "name": "Last session duration",
        "reads": ("@last_session_duration",),
        "device_class": "duration",
        "unit": "s",
        "entity_category": "diagnostic",
        "icon": "mdi:timer-outline",
    },
    {
        "key": "last_session_card",
        "component": "sensor",
        "name": "Last session card",
        "reads": ("@last_session_card",),
        "entity_category": "diagnostic",
        "icon": "mdi:card-account-details-outline",
        "doc": "the card's name, app, or none",
    },
    {
        "key": "energy_this_month",
        "component": "sensor",
        "name": "Energy this month",
        "reads": ("@month_energy",),
        "device_class": "energy",
        "state_class": "total_increasing",
        "unit": "kWh",
        "entity_category": "diagnostic",
        "icon": "mdi:ev-station",
        "precision": 2,
        "doc": "the ledger's sessions this month",
    },
    {
        "key": "cost_this_month",
        "component": "sensor",
        "name": "Cost this month",
        "reads": ("@month_cost",),
        "device_class": "monetary",
        "state_class": "total",
        "unit": "EUR",
        "entity_category": "diagnostic",
        "icon": "mdi:cash",
        "precision": 2,
        "plausible": (-1000000000.0, 1000000000.0),
    },
    {
        "key": "card_0_energy_this_month",
        "component": "sensor",
        "name": "Card 0 energy this month",
        "reads": ("@card_0_month_energy",),
        "device_class": "energy",
        "state_class": "total_increasing",
        "unit": "kWh",
        "entity_category": "diagnostic",
        "icon": "mdi:card-account-details-outline",
        "precision": 2,
        "doc": "named after the card (c0n), from the ledger's sessions with it (not c0e)",
        "name_reads": CARD_NAMES,
    },
    {
        "key": "card_1_energy_this_month",
        "component": "sensor",
        "name": "Card 1 energy this month",
        "reads": ("@card_1_month_energy",),
        "device_class": "energy",
        "state_class": "total_increasing",
        "unit": "kWh",
        "entity_category": "diagnostic",
        "icon": "mdi:card-account-details-outline",
        "precision": 2,
        "enabled_by_default": False,
        "name_reads": CARD_NAMES,
    },
    {
        "key": "card_2_energy_this_month",
        "component": "sensor",
        "name": "Card 2 energy this month",
        "reads": ("@card_2_month_energy",),
        "device_class": "energy",
        "state_class": "total_increasing",
        "unit": "kWh",
        "entity_category": "diagnostic",
        "icon": "mdi:card-account-details-outline",
        "precision": 2,
        "enabled_by_default": False,
        "name_reads": CARD_NAMES,
    },
    {
        "key": "card_3_energy_this_month",
        "component": "sensor",
        "name": "Card 3 energy this month",
        "reads": ("@card_3_month_energy",),
        "device_class": "energy",
        "state_class": "total_increasing",
        "unit": "kWh",
        "entity_category": "diagnostic",
        "icon": "mdi:card-account-details-outline",
        "precision": 2,
        "enabled_by_default": False,
        "name_reads": CARD_NAMES,
    },
    {
        "key": "card_4_energy_this_month",
        "component": "sensor",
        "name": "Card 4 energy this month",
        "reads": ("@card_4_month_energy",),
        "device_class": "energy",
        "state_class": "total_increasing",
        "unit": "kWh",
        "entity_category": "diagnostic",
        "icon": "mdi:card-account-details-outline",
        "precision": 2,
        "enabled_by_default": False,
        "name_reads": CARD_NAMES,
    },
    {
        "key": "card_5_energy_this_month",
        "component": "sensor",
        "name": "Card 5 energy this month",
        "reads": ("@card_5_month_energy",),
        "device_class": "energy",
        "state_class": "total_increasing",
        "unit": "kWh",
        "entity_category": "diagnostic",
        "icon": "mdi:card-account-details-outline",
        "precision": 2,
        "enabled_by_default": False,
        "name_reads": CARD_NAMES,
    },
    {
        "key": "card_6_energy_this_month",
        "component": "sensor",
        "name": "Card 6 energy this month",
        "reads": ("@card_6_month_energy",),
        "device_class": "energy",
        "state_class": "total_increasing",
        "unit": "kWh",
        "entity_category": "diagnostic",
        "icon": "mdi:card-account-details-outline",
        "precision": 2,
        "enabled_by_default": False,
        "name_reads": CARD_NAMES,
    },
    {
        "key": "card_7_energy_this_month",
        "component": "sensor",
        "name": "Card 7 energy this month",
        "reads": ("@card_7_month_energy",),
        "device_class": "energy",
        "state_class": "total_increasing",
        "unit": "kWh",
        "entity_category": "diagnostic",
        "icon": "mdi:card-account-details-outline",
        "precision": 2,
        "enabled_by_default": False,
        "name_reads": CARD_NAMES,
    },
    {
        "key": "card_8_energy_this_month",
        "component": "sensor",
        "name": "Card 8 energy this month",
        "reads": ("@card_8_month_energy",),
        "device_class": "energy",
        "state_class": "total_increasing",
        "unit": "kWh",
        "entity_category": "diagnostic",
        "icon": "mdi:card-account-details-outline",
        "precision": 2,
        "enabled_by_default": False,
        "name_reads": CARD_NAMES,
    },
    {
        "key": "card_9_energy_this_month",
        "component": "sensor",
        "name": "Card 9 energy this month",
        "reads": ("@card_9_month_energy",),
        "device_class": "energy",
        "state_class": "total_increasing",
        "unit": "kWh",
        "entity_category": "diagnostic",
        "icon": "mdi:card-account-details-outline",
        "precision": 2,
        "enabled_by_default": False,
        "name_reads": CARD_NAMES,
    },
]


def declared(entity: EntityDescription) -> dict[str, Any]:
    """What the description says beyond the defaults, its functions aside."""
    return {
        f.name: getattr(entity, f.name)
        for f in dataclasses.fields(entity)
        if not callable(getattr(entity, f.name))
        and (f.name not in _DEFAULTS or _DEFAULTS[f.name] != getattr(entity, f.name))
    }


def test_the_ledger_entities_are_pinned_in_order() -> None:
    assert [declared(entity) for entity in SESSION] == EXPECTED


def by_key() -> dict[str, EntityDescription]:
    return {entity.key: entity for entity in SESSION}


def test_their_values_read_the_added_keys() -> None:
    status = {
        "@session_energy": 1.23456,
        "@session_cost": 0.98765,
        "@last_session_energy": 2.0004,
        "@last_session_cost": 1.005,
        "@last_session_duration": 3600.4,
        "@last_session_card": "Anna",
        "@month_energy": 12.3456,
        "@month_cost": 4.5678,
        **{f"@card_{slot}_month_energy": slot + 0.12345 for slot in range(10)},
    }
    states = {key: entity.state(status) for key, entity in by_key().items()}
    assert states == {
        "session_energy": 1.235,
        "session_cost": 0.99,
        "last_session_energy": 2.0,
        "last_session_cost": 1.0,
        "last_session_duration": 3600,
        "last_session_card": "Anna",
        "energy_this_month": 12.346,
        "cost_this_month": 4.57,
        "card_0_energy_this_month": 0.123,
        "card_1_energy_this_month": 1.123,
        "card_2_energy_this_month": 2.123,
        "card_3_energy_this_month": 3.123,
        "card_4_energy_this_month": 4.123,
        "card_5_energy_this_month": 5.123,
        "card_6_energy_this_month": 6.123,
        "card_7_energy_this_month": 7.123,
        "card_8_energy_this_month": 8.123,
        "card_9_energy_this_month": 9.123,
    }


def test_a_card_entity_is_there_with_its_slot_and_named_after_its_card() -> None:
    entities = by_key()
    present = {key for key, entity in entities.items() if entity.present({"c3n", "c3e"})}
    assert present == {
        "session_energy",
        "session_cost",
        "last_session_energy",
        "last_session_cost",
        "last_session_duration",
        "last_session_card",
        "energy_this_month",
        "cost_this_month",
        "card_3_energy_this_month",
    }
    assert all(entity.present({"cards"}) for entity in SESSION)
    status = {"c0n": "Anna", "c1n": "Anna", "c2n": "Bob", "c3n": 7}
    names = {
        key: entity.name_from(status)
        for key, entity in entities.items()
        if entity.name_from is not None
    }
    assert names == {
        "card_0_energy_this_month": None,  # shared with card 1: stands for neither
        "card_1_energy_this_month": None,
        "card_2_energy_this_month": "Bob energy this month",
        "card_3_energy_this_month": None,
        "card_4_energy_this_month": None,
        "card_5_energy_this_month": None,
        "card_6_energy_this_month": None,
        "card_7_energy_this_month": None,
        "card_8_energy_this_month": None,
        "card_9_energy_this_month": None,
    }
