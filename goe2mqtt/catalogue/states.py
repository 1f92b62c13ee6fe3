"""From a charger's status to its entities' states, and a state to its topic's text."""

from __future__ import annotations

from collections.abc import Mapping, Set
from typing import Any

from goe2mqtt.catalogue.index import STATE_ENTITIES, STATUS_KEYS
from goe2mqtt.catalogue.model import EntityDescription, StateValue, Status, Unreadable
from goe2mqtt.catalogue.pv import FEED_OFF
from goe2mqtt.catalogue.session import SESSION_OFF

# Each key name once for the whole process (see keep_known).
_KEY_NAMES: dict[str, str] = {key: key for key in STATUS_KEYS}


def keep_known(status: Mapping[str, Any]) -> dict[str, Any]:
    """The status as kept: only the keys we read, each the catalogue's own string.

    json.loads makes new key strings for every answer, held per charger until the next
    poll (docs/scaling.md: what they cost). Keys we did not ask for are dropped:
    nothing reads them.
    """
    return {_KEY_NAMES[key]: value for key, value in status.items() if key in _KEY_NAMES}


def reported_keys(status: Status) -> frozenset[str]:
    """The keys of ours the charger reports (a null value counts: the key exists)."""
    return STATUS_KEYS.intersection(status)


# The added keys' values as they are when nothing else is said.
ADDED_DEFAULTS: Mapping[str, Any] = {**FEED_OFF, **SESSION_OFF, "@connection": "polling"}


def read_states(
    status: Status,
    keys: Set[str] | None = None,
    entities: tuple[EntityDescription, ...] = STATE_ENTITIES,
) -> tuple[dict[str, StateValue], dict[str, str]]:
    """The state of each entity the charger has (per `keys`, default: what the status
    holds), and why the unreadable ones are unknown."""
    present = reported_keys(status) if keys is None else keys
    if ADDED_DEFAULTS.keys() - status.keys():
        # Without the bridge's values (a pure caller, a test): no feed, polled.
        status = {**ADDED_DEFAULTS, **status}
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
