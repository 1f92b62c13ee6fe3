"""What a charger says about itself that shapes its Home Assistant entities.

Pure: built from a status (model, firmware, which keys, the ranges and options that
follow its state), compared on every poll, remembered across restarts as JSON.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from goe2mqtt.catalogue import (
    BASELINE_KEYS,
    DEVICE_KEYS,
    ENTITIES,
    EntityDescription,
    Status,
    reported_keys,
)
from goe2mqtt.catalogue.writes import number_range
from goe2mqtt.util.numbers import finite_number
from goe2mqtt.util.text import clean_text


@dataclass(frozen=True)
class DeviceFacts:
    """What the charger says about itself that shapes its discovery: model, firmware,
    which keys it has (so which entities), and the ranges and options that follow
    its state. Cheap to build and compare on every poll: discovery is only rendered
    again when these change."""

    model: str | None = None
    sw_version: str | None = None
    keys: frozenset[str] = BASELINE_KEYS
    ranges: tuple[tuple[str, float, float], ...] = ()  # entity key, min, max
    choices: tuple[tuple[str, tuple[str, ...]], ...] = ()  # entity key, options
    names: tuple[tuple[str, str], ...] = ()  # entity key, the name it has now
    contacted: bool = False  # False: the charger never answered, keys are the baseline

    @classmethod
    def from_status(cls, status: Status, keys: frozenset[str] | None = None) -> DeviceFacts:
        """From one status; `keys` the charger has (default: the ones this status holds)."""
        model, firmware = status.get("typ"), status.get("fwv")
        keys = reported_keys(status) if keys is None else keys
        return cls(
            model=_text(model),
            sw_version=_text(firmware),
            keys=keys,
            ranges=tuple(
                (entity.key, *_shown_range(entity, status))
                for entity in _FOLLOWING_RANGES
                if entity.present(keys)
            ),
            choices=tuple(
                (entity.key, tuple(entity.write.choices_for(status).values()))
                for entity in _FOLLOWING_CHOICES
                if entity.write is not None and entity.present(keys)
            ),
            names=tuple(
                (entity.key, name)
                for entity in _FOLLOWING_NAMES
                if entity.name_from is not None
                and entity.present(keys)
                and (name := entity.name_from(status)) is not None
            ),
            contacted=True,
        )

    def to_json(self) -> dict[str, Any]:
        """For state_dir: what a restart announces until the charger answers."""
        return {
            "model": self.model,
            "sw_version": self.sw_version,
            "keys": sorted(self.keys),
            "ranges": [list(r) for r in self.ranges],
            "choices": [[key, list(options)] for key, options in self.choices],
            "names": [list(name) for name in self.names],
        }

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> DeviceFacts | None:
        """Facts remembered from an earlier run (not contacted in this one); None for
        anything that does not read as such."""
        try:
            model, sw_version = data["model"], data["sw_version"]
            keys = frozenset(str(key) for key in data["keys"])
            ranges = tuple((str(k), _finite(low), _finite(high)) for k, low, high in data["ranges"])
            choices = tuple((str(k), tuple(str(o) for o in opts)) for k, opts in data["choices"])
            # Cleaned again: the file is outside the bridge's hands (and older ones have none).
            names = tuple((str(k), clean_text(str(n), _NAME_LENGTH))
                          for k, n in data.get("names", ()))  # fmt: skip
        except (KeyError, TypeError, ValueError):
            return None
        if not (model is None or isinstance(model, str)):
            return None
        if not (sw_version is None or isinstance(sw_version, str)):
            return None
        return cls(
            _text(model), _text(sw_version), keys, ranges, choices, names=names, contacted=False
        )


def _finite(value: object) -> float:
    """A range's bound from the file: a number a float holds (10**400 would not convert,
    NaN would reach Home Assistant's config), else ValueError."""
    number = finite_number(value)
    if number is None:
        raise ValueError(f"not a finite number: {str(value)[:20]}")
    return float(number)


def _text(value: object) -> str | None:
    """The charger's own words for discovery's device block: text, cleaned, or None."""
    return (clean_text(value) or None) if isinstance(value, str) else None


# Entities whose discovery follows the charger's state: every number (its range follows
# the charger's limits, and must hold the value it shows), selects of card names.
_FOLLOWING_RANGES = tuple(e for e in ENTITIES if e.write is not None and e.component == "number")
_FOLLOWING_CHOICES = tuple(e for e in ENTITIES if e.write is not None and callable(e.write.choices))
# ... and entities named after what the charger reports (a card's name).
_FOLLOWING_NAMES = tuple(e for e in ENTITIES if e.name_from is not None)
_NAME_LENGTH = 64  # a name from the facts file: a card's, and the words around it
# The keys discovery facts depend on: a status that changed none of them (and no key
# appeared or went) leaves discovery as it is.
FACT_KEYS: frozenset[str] = frozenset(
    {"typ", "fwv", *DEVICE_KEYS}
    | {key for e in (*_FOLLOWING_RANGES, *_FOLLOWING_CHOICES) for key in e.reads}
    | {key for e in _FOLLOWING_NAMES for key in e.name_reads}
)


def _shown_range(entity: EntityDescription, status: Status) -> tuple[float, float]:
    """The range HA's number gets: the real one, widened to hold the current value
    (HA drops a state outside min..max as an error; a set above the ceiling is still
    refused, with the reason, by the command)."""
    assert entity.write is not None
    low, high, _ = number_range(entity.write, status)
    try:
        value = entity.state(status) if entity.value is not None else None
    except Exception:  # an unreadable value shows as unknown: nothing to make room for
        value = None
    number = finite_number(value)
    if number is not None:
        low, high = min(low, number), max(high, number)
    return low, high
