"""Every entity goe2mqtt exposes, described once, split by domain.

Discovery, state publishing and command routing all read ENTITIES: adding an entity
is adding one EntityDescription to its domain's module (charging, phases, limits,
energy, pv, access, cable, diagnostics). Value functions are pure: they turn a raw go-e
status into one state, return None for "unknown", and raise Unreadable when the
charger sent something that cannot be right (the bridge logs it once). An entity
exists for a charger only when the charger reports its keys (model and firmware).
"""

from __future__ import annotations

from goe2mqtt.catalogue.codes import CAR_STATES, PHASE_MODES
from goe2mqtt.catalogue.index import (
    ACTIONS,
    BASELINE_KEYS,
    COMMAND_KEYS,
    DEVICE_KEYS,
    ENTITIES,
    ENTITIES_BY_KEY,
    ENTITIES_READING,
    LIVE_KEYS,
    SETTABLE,
    SETTLED_KEYS,
    STATE_ENTITIES,
    STATUS_KEYS,
    UNCONFIRMABLE,
)
from goe2mqtt.catalogue.limits import current_bounds
from goe2mqtt.catalogue.model import (
    EntityDescription,
    Invalid,
    StateValue,
    Status,
    Unreadable,
    Write,
)
from goe2mqtt.catalogue.states import (
    ADDED_DEFAULTS,
    UNKNOWN,
    format_state,
    keep_known,
    read_states,
    reported_keys,
)

__all__ = [
    "ACTIONS",
    "ADDED_DEFAULTS",
    "BASELINE_KEYS",
    "CAR_STATES",
    "COMMAND_KEYS",
    "DEVICE_KEYS",
    "ENTITIES",
    "ENTITIES_BY_KEY",
    "ENTITIES_READING",
    "LIVE_KEYS",
    "PHASE_MODES",
    "SETTABLE",
    "SETTLED_KEYS",
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
    "keep_known",
    "read_states",
    "reported_keys",
]
