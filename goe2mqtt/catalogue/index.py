"""The catalogue's tables: every entity once, and the key sets read from them.

Discovery, state publishing, command routing and polling all read these; nothing here
is written by hand twice (adding an entity to its domain's module is enough).
"""

from __future__ import annotations

from collections.abc import Mapping

from goe2mqtt.catalogue.access import ACCESS
from goe2mqtt.catalogue.cable import CABLE
from goe2mqtt.catalogue.charging import CHARGING
from goe2mqtt.catalogue.diagnostics import DIAGNOSTICS
from goe2mqtt.catalogue.energy import ENERGY
from goe2mqtt.catalogue.limits import LIMITS
from goe2mqtt.catalogue.model import ADDED_KEY_PREFIX, EntityDescription
from goe2mqtt.catalogue.phases import PHASES
from goe2mqtt.catalogue.pv import PV
from goe2mqtt.catalogue.session import SESSION

ENTITIES: tuple[EntityDescription, ...] = (
    *CHARGING, *PHASES, *LIMITS, *ENERGY, *PV, *ACCESS, *CABLE, *DIAGNOSTICS, *SESSION,
)  # fmt: skip

ENTITIES_BY_KEY: Mapping[str, EntityDescription] = {e.key: e for e in ENTITIES}
assert len(ENTITIES_BY_KEY) == len(ENTITIES), "entity keys must be unique"
# The entities with a state (a button has none): each has its own state topic.
STATE_ENTITIES: tuple[EntityDescription, ...] = tuple(e for e in ENTITIES if e.value is not None)

# Keys that describe the device rather than an entity (device registry, number limits).
DEVICE_KEYS = ("typ", "fwv", "sse", "mca", "ama", "var", "cbl", "adi", "amt")
# Keys commands need to decide (car state for the button).
COMMAND_KEYS = ("car",)

STATUS_KEYS: frozenset[str] = frozenset(
    key
    for key in (
        *(key for entity in ENTITIES for key in entity.reads),
        *DEVICE_KEYS,
        *COMMAND_KEYS,
    )
    if not key.startswith(ADDED_KEY_PREFIX)
)

# What every API v2 charger reports: before a charger has answered once, its
# entities of these keys are announced so Home Assistant can show it unavailable.
BASELINE_KEYS: frozenset[str] = frozenset(
    ("car", "alw", "amp", "psm", "pnp", "acs", "frc", "trx", "wh", "eto", "nrg", "err",
     "modelStatus", "tma", "rssi", "fwv", "fna")
)  # fmt: skip

# The go-e keys the generic set command may write, each with the entity that
# declares how (the first one declaring a key). ids is the PV feed's alone: it
# must be resent every few seconds, which one set call cannot do.
_settable: dict[str, EntityDescription] = {}
for _entity in ENTITIES:
    if _entity.write is not None and _entity.write.key != "ids":
        _settable.setdefault(_entity.write.key, _entity)
SETTABLE: Mapping[str, EntityDescription] = _settable
# Keys whose write is an action, not a value (rst restarts): sending one twice does
# it twice, so it is never resent, and a lost answer leaves its outcome unknown.
ACTIONS: frozenset[str] = frozenset(
    e.write.key for e in ENTITIES if e.write is not None and e.write.kind == "press"
)
# Keys a set cannot be read back for (rst restarts, ids is not reported as such).
UNCONFIRMABLE: frozenset[str] = frozenset(
    e.write.key for e in ENTITIES if e.write is not None and not e.write.read_back
)

# Polite polling: settings and facts change when someone changes them (the app, a
# command, a firmware update), not by themselves. They are read every config_interval
# and after each write; every other key every scan_interval. A key is settled when only
# config entities read it, or it describes the device; these change on their own all
# the same (a card swipe sets the transaction). sse stays live: every answer is checked
# for the serial it comes from.
_CHANGES_ON_ITS_OWN = frozenset({"trx"})
_READ_BEYOND_CONFIG = {
    key for e in STATE_ENTITIES if e.entity_category != "config" for key in e.reads
}
SETTLED_KEYS: frozenset[str] = (
    frozenset(
        {key for e in STATE_ENTITIES if e.entity_category == "config" for key in e.reads}
        - _READ_BEYOND_CONFIG
        - _CHANGES_ON_ITS_OWN
        | {"typ", "fwv", "var", "fna", "cards", *(f"c{i}n" for i in range(10))}
    )
    & STATUS_KEYS
)
LIVE_KEYS: frozenset[str] = STATUS_KEYS - SETTLED_KEYS


# go-e key (or added key) -> the entities whose state it feeds: what to read again
# when that key changed.
_reading: dict[str, list[EntityDescription]] = {}
for _entity in STATE_ENTITIES:
    for _key in _entity.reads:
        _reading.setdefault(_key, []).append(_entity)
ENTITIES_READING: Mapping[str, tuple[EntityDescription, ...]] = {
    key: tuple(entities) for key, entities in _reading.items()
}
