"""Every entity goe2mqtt exposes, described once, split by domain.

Discovery, state publishing and command routing all read ENTITIES: adding an entity
is adding one EntityDescription to its domain's module (charging, energy,
diagnostics). Value functions are pure: they turn a raw go-e status into one state,
return None for "unknown", and raise Unreadable when the charger sent something that
cannot be right (the bridge logs it once).
"""

from __future__ import annotations

from collections.abc import Mapping

from goe2mqtt.catalogue.charging import CHARGING
from goe2mqtt.catalogue.codes import CAR_STATES, PHASE_MODES
from goe2mqtt.catalogue.diagnostics import DIAGNOSTICS
from goe2mqtt.catalogue.energy import ENERGY
from goe2mqtt.catalogue.model import EntityDescription, StateValue, Status, Unreadable

__all__ = [
    "CAR_STATES",
    "ENTITIES",
    "ENTITIES_BY_KEY",
    "PHASE_MODES",
    "STATE_ENTITIES",
    "STATUS_KEYS",
    "UNKNOWN",
    "EntityDescription",
    "StateValue",
    "Status",
    "Unreadable",
    "format_state",
    "read_states",
]

ENTITIES: tuple[EntityDescription, ...] = (*CHARGING, *ENERGY, *DIAGNOSTICS)

ENTITIES_BY_KEY: Mapping[str, EntityDescription] = {e.key: e for e in ENTITIES}
# The entities with a state (a button has none): each has its own state topic.
STATE_ENTITIES: tuple[EntityDescription, ...] = tuple(e for e in ENTITIES if e.value is not None)

# Keys that describe the device rather than an entity (device registry, number limits).
DEVICE_KEYS = ("typ", "fwv", "sse", "mca", "ama")
# Keys commands need to decide (car state for the button, limits for the current).
COMMAND_KEYS = ("car", "mca", "ama")

STATUS_KEYS: frozenset[str] = (
    frozenset(key for entity in ENTITIES for key in entity.reads)
    | frozenset(DEVICE_KEYS)
    | frozenset(COMMAND_KEYS)
)


def read_states(status: Status) -> tuple[dict[str, StateValue], dict[str, str]]:
    """Every entity's state from one status, and why the unreadable ones are unknown."""
    states: dict[str, StateValue] = {}
    problems: dict[str, str] = {}
    for entity in STATE_ENTITIES:
        assert entity.value is not None
        try:
            states[entity.key] = entity.value(status)
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
    if value is None:
        return UNKNOWN
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, float):
        return repr(int(value)) if value.is_integer() else repr(value)
    return str(value)
