"""What one charger's status means: its keys, its entity states, its discovery facts.

Pure, and incremental: a poll whose answer equals the last one costs one comparison
per key; one that changed re-reads only the entities whose keys changed, and
renders discovery facts only when a key they depend on changed. A fleet is mostly
idle chargers answering the same thing again.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from typing import Any

from goe2mqtt.catalogue import (
    BASELINE_KEYS,
    ENTITIES_READING,
    STATE_ENTITIES,
    EntityDescription,
    StateValue,
    format_state,
    read_states,
    reported_keys,
)
from goe2mqtt.catalogue.facts import FACT_KEYS, DeviceFacts
from goe2mqtt.util.interning import Interner

_MISSING = object()
# Shared across chargers: a fleet holds a handful of distinct ones, not one per charger.
_key_sets: Interner[frozenset[str]] = Interner()
_facts: Interner[DeviceFacts] = Interner()


def _differs(old: Any, new: Any) -> bool:
    # True == 1 in Python: a bool turning into a number is a change all the same.
    return old is _MISSING or type(old) is not type(new) or old != new


@dataclass
class Update:
    """What one status changed."""

    facts: DeviceFacts | None  # new discovery facts, or None when they did not change
    changed: list[str]  # entity keys whose state text changed
    new_problems: dict[str, str]  # entity -> why unreadable, for ones not unreadable before


@dataclass
class ChargerView:
    keys: frozenset[str] | None = None  # the keys the charger has (see learn_keys)
    heard: frozenset[str] = frozenset()  # the keys it reported since its firmware changed
    firmware: Any = None
    states: dict[str, StateValue] = field(default_factory=dict)  # what the topics say
    problems: dict[str, str] = field(default_factory=dict)
    facts: DeviceFacts | None = None
    _status: Mapping[str, Any] | None = None  # the last status taken
    _added: dict[str, Any] = field(default_factory=dict)

    def learn_keys(self, status: Mapping[str, Any]) -> frozenset[str]:
        """The keys this charger has: what it reported since its firmware last changed.

        A key missing from one answer (a partial or garbled status) leaves its entity in
        place, shown unknown; only a firmware change lets keys - and entities - go.
        Until every key each API v2 firmware has was heard (a pushing charger heard
        mid-stream tells only what changed: its uptime), those are taken as had too:
        what was heard is part of a picture, not a charger of three entities.
        """
        firmware = status.get("fwv")
        reported = reported_keys(status)
        if self.keys is None or firmware != self.firmware:
            self.heard, self.firmware = reported, firmware
        elif not reported <= self.heard:
            self.heard = self.heard | reported
        keys = self.heard if self.whole else self.heard | BASELINE_KEYS
        if keys != self.keys:
            self.keys = _key_sets(keys)
        assert self.keys is not None
        return self.keys

    @property
    def whole(self) -> bool:
        """Every key each API v2 firmware has was heard: the charger's picture, not a part."""
        return self.heard >= BASELINE_KEYS

    def update(
        self,
        status: Mapping[str, Any],
        added_values: Mapping[str, Any],
        changed: set[str] | None = None,
    ) -> Update:
        """Take one status (and the added keys' values: PV feed, connection, session).

        ``changed``: the keys known to differ from the last status (a pushed delta);
        the rest are then not compared, and the key set is learnt only from them.
        """
        known, was_whole = self.keys, self.whole
        if changed is not None and known is not None and changed <= self.heard:
            keys = known
        else:
            keys = self.learn_keys(status)
        if (
            self._status is None
            or (known is not keys and known != keys)
            or (self.whole != was_whole)
        ):
            changed_keys: set[str] | None = None  # a new key set: everything anew
        else:
            in_status = changed if changed is not None else _changes(self._status, status)
            changed_keys = in_status | _changes(self._added, added_values)
            if not changed_keys:
                return Update(None, [], {})
        # Kept by reference: the charger holds the same status, so no copy is made.
        self._status, self._added = status, dict(added_values)

        facts = None
        if changed_keys is None or not changed_keys.isdisjoint(FACT_KEYS):
            facts = DeviceFacts.from_status(status, keys)
            if not self.whole:
                # Not the charger's word on which keys it has: announced, never remembered,
                # and nothing an earlier run announced is taken back on its strength.
                facts = replace(facts, contacted=False)
            if facts == self.facts:
                facts = None
            else:
                self.facts = facts = _facts(facts)

        before = self.states
        if changed_keys is None:
            entities: tuple[EntityDescription, ...] = STATE_ENTITIES
            self.states, self.problems = {}, {}
        else:
            entities = _reading(changed_keys)
        states, problems = read_states({**status, **added_values}, keys, entities)
        new_problems = {k: v for k, v in problems.items() if k not in self.problems}
        for entity in entities:
            self.problems.pop(entity.key, None)
        self.problems.update(problems)
        shown = [
            key
            for key, value in states.items()
            if key not in before or format_state(before[key]) != format_state(value)
        ]
        self.states.update(states)
        return Update(facts, shown, new_problems)

    def text(self, key: str) -> str:
        """What the entity's state topic says."""
        return format_state(self.states[key])


def changed_in(before: Mapping[str, Any], delta: Mapping[str, Any]) -> set[str]:
    """The keys of a delta whose values differ from before."""
    return {k for k, v in delta.items() if _differs(before.get(k, _MISSING), v)}


def _changes(before: Mapping[str, Any], now: Mapping[str, Any]) -> set[str]:
    changed = {k for k, v in now.items() if _differs(before.get(k, _MISSING), v)}
    changed.update(before.keys() - now.keys())
    return changed


def _reading(keys: set[str]) -> tuple[EntityDescription, ...]:
    """The entities that read any of these keys, in catalogue order."""
    wanted = {entity.key for key in keys for entity in ENTITIES_READING.get(key, ())}
    return tuple(entity for entity in STATE_ENTITIES if entity.key in wanted)
