"""Every entity goe2mqtt exposes, described once, split by domain.

Discovery, state publishing and command routing all read ENTITIES: adding an entity
is adding one EntityDescription to its domain's module (charging, phases, limits,
energy, pv, access, cable, diagnostics). Value functions are pure: they turn a raw go-e
status into one state, return None for "unknown", and raise Unreadable when the
charger sent something that cannot be right (the bridge logs it once). An entity
exists for a charger only when the charger reports its keys (model and firmware).
"""

from __future__ import annotations

from collections.abc import Mapping, Set
from typing import Any

from goe2mqtt.catalogue.access import ACCESS
from goe2mqtt.catalogue.cable import CABLE
from goe2mqtt.catalogue.charging import CHARGING
from goe2mqtt.catalogue.codes import CAR_STATES, PHASE_MODES
from goe2mqtt.catalogue.diagnostics import DIAGNOSTICS
from goe2mqtt.catalogue.energy import ENERGY
from goe2mqtt.catalogue.limits import LIMITS, current_bounds
from goe2mqtt.catalogue.model import (
    BRIDGE_KEY_PREFIX,
    EntityDescription,
    Invalid,
    StateValue,
    Status,
    Unreadable,
    Write,
)
from goe2mqtt.catalogue.phases import PHASES
from goe2mqtt.catalogue.pv import FEED_OFF, PV

__all__ = [
    "ACTIONS",
    "BASELINE_KEYS",
    "CAR_STATES",
    "DEVICE_KEYS",
    "ENTITIES",
    "ENTITIES_BY_KEY",
    "ENTITIES_READING",
    "PHASE_MODES",
    "SETTABLE",
    "STATE_ENTITIES",
    "STATUS_KEYS",
    "UNCONFIRMABLE",
    "UNKNOWN",
    "EntityDescription",
    "Invalid",
    "StateValue",
    "Status",
    "Unreadable",
    "Write",
    "current_bounds",
    "format_state",
    "own_keys",
    "read_states",
    "reported_keys",
]

ENTITIES: tuple[EntityDescription, ...] = (
    *CHARGING, *PHASES, *LIMITS, *ENERGY, *PV, *ACCESS, *CABLE, *DIAGNOSTICS,
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
    if not key.startswith(BRIDGE_KEY_PREFIX)
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
SETTLED_KEYS: frozenset[str] = frozenset(
    {key for e in STATE_ENTITIES if e.entity_category == "config" for key in e.reads}
    - _READ_BEYOND_CONFIG
    - _CHANGES_ON_ITS_OWN
    | {"typ", "fwv", "var", "fna", "cards", *(f"c{i}n" for i in range(10))}
) & STATUS_KEYS
LIVE_KEYS: frozenset[str] = STATUS_KEYS - SETTLED_KEYS


# Each key name once for the whole process (see own_keys).
_KEY_NAMES: dict[str, str] = {key: key for key in STATUS_KEYS}


def own_keys(status: Mapping[str, Any]) -> dict[str, Any]:
    """The status as kept: only the keys we read, each the catalogue's own string.

    json.loads makes new key strings for every answer; held per charger until the
    next poll that was ~7 KiB of identical names each (tracemalloc, 1000 chargers).
    Keys we did not ask for are dropped: nothing reads them.
    """
    return {_KEY_NAMES[key]: value for key, value in status.items() if key in _KEY_NAMES}


def reported_keys(status: Status) -> frozenset[str]:
    """The keys of ours the charger reports (a null value counts: the key exists)."""
    return STATUS_KEYS.intersection(status)


# go-e key (or bridge key) -> the entities whose state it feeds: what to read again
# when that key changed.
_reading: dict[str, list[EntityDescription]] = {}
for _entity in STATE_ENTITIES:
    for _key in _entity.reads:
        _reading.setdefault(_key, []).append(_entity)
ENTITIES_READING: Mapping[str, tuple[EntityDescription, ...]] = {
    key: tuple(entities) for key, entities in _reading.items()
}


# The bridge's own values the entities read, as they are when nothing else is said.
BRIDGE_DEFAULTS: Mapping[str, Any] = {**FEED_OFF, "@connection": "polling"}


def read_states(
    status: Status,
    keys: Set[str] | None = None,
    entities: tuple[EntityDescription, ...] = STATE_ENTITIES,
) -> tuple[dict[str, StateValue], dict[str, str]]:
    """The state of each entity the charger has (per `keys`, default: what the status
    holds), and why the unreadable ones are unknown."""
    present = reported_keys(status) if keys is None else keys
    if BRIDGE_DEFAULTS.keys() - status.keys():
        # Without the bridge's values (a pure caller, a test): no feed, polled.
        status = {**BRIDGE_DEFAULTS, **status}
    states: dict[str, StateValue] = {}
    problems: dict[str, str] = {}
    for entity in entities:
        if not entity.present(present):
            continue
        try:
            value = entity.state(status)
            # Empty text (an unnamed card slot) is unknown, as on the leaf topics: null
            # in the JSON state too, never "".
            states[entity.key] = None if value == "" else value
        except Unreadable as exc:
            states[entity.key] = None
            problems[entity.key] = str(exc)
        except Exception as exc:  # one odd value must not stop the others
            states[entity.key] = None
            problems[entity.key] = f"{', '.join(entity.reads)}: {type(exc).__name__}"
    return states, problems


UNKNOWN = "null"


def format_state(value: StateValue) -> str:
    """The plain text on a state topic: JSON's null for unknown, which Node-RED (and
    any JSON reader) parses as null; discovery's value_template turns it into the
    "None" that Home Assistant reads as unknown."""
    if value is None or value == "":  # read_states makes "" None; a caller's own value
        return UNKNOWN  # an empty retained payload would delete the topic instead
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, float):
        return repr(int(value)) if value.is_integer() else repr(value)
    return str(value)
