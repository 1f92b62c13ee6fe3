"""What an entity is: its description, how it is written, and the types its functions speak."""

from __future__ import annotations

from collections.abc import Callable, Mapping, Set
from dataclasses import dataclass
from typing import Any, Literal

from goe2mqtt.util.numbers import describe, is_number
from goe2mqtt.util.text import clean_text, slug

Status = Mapping[str, Any]
StateValue = str | int | float | bool | None
ValueFn = Callable[[Status], StateValue]
NameFn = Callable[[Status], str | None]  # a name that follows the charger; None: the default
# Home Assistant's default payload for a button: what a press sends, and what every
# parameterless command accepts.
PRESS = "PRESS"
Component = Literal["sensor", "binary_sensor", "number", "select", "button", "switch", "text"]
WriteKind = Literal["number", "switch", "select", "text", "time", "press"]
# A number's allowed range now, in the entity's unit, and what sets the upper end.
Bounds = tuple[float, float, str]
Choices = Mapping[Any, str]  # go-e value -> the option name users see

# What a charger can measure at most, by the entity's unit (generous: orders of
# magnitude, not a product's ratings). Beyond it the value is a fault - a broken meter,
# a hostile peer - and shown unknown (logged once), never a 309-digit charging power.
PLAUSIBLE: Mapping[str, tuple[float, float]] = {
    "W": (-1e6, 1e6),
    "kW": (-1e3, 1e3),
    "A": (-1000.0, 1000.0),
    "V": (-1000.0, 1000.0),
    "kWh": (-1e9, 1e9),  # 10**12 Wh
    "°C": (-100.0, 200.0),
    "%": (-100.0, 100.0),  # power factor
    "Hz": (0.0, 1000.0),
    "dBm": (-200.0, 50.0),
    "s": (-1e9, 1e9),  # about 30 years
    "ct/kWh": (-1e6, 1e6),
}

# Added keys: values the bridge adds to a charger's status (the PV feed's state, the
# Connection), never the charger's; they are never asked for in the status filter.
ADDED_KEY_PREFIX = "@"


def key_of(name: str) -> str:
    """The entity key (topic leaf) for a name: 'Zero feed-in offset' -> zero_feed_in_offset.

    Old Home Assistant makes the entity id the same way from the device and entity name,
    so keys made here match both (test_discovery checks every entity)."""
    return slug(name)


class Unreadable(ValueError):
    """A raw value that cannot become a state; the message names the key."""


class Invalid(ValueError):
    """A value that cannot be written; the message is the reason users read."""


@dataclass(frozen=True, kw_only=True)
class Write:
    """How a payload becomes one go-e set call, declared once per writable entity.

    Values arrive in the entity's unit (kWh, "07:30", "on") on the entity's command
    topic, or in go-e's own unit through the generic set command; both are validated
    against the same declaration before anything is sent.
    """

    key: str  # the go-e key written
    kind: WriteKind
    minimum: float | None = None  # number: entity unit
    maximum: float | None = None
    step: float = 1.0
    integer: bool = False  # number: go-e wants an integer
    scale: float = 1.0  # go-e value = entity value * scale (kWh -> Wh: 1000)
    bounds: Callable[[Status], Bounds] | None = None  # a range that follows the charger
    null_means: str | None = None  # null is allowed and means this (e.g. "no limit")
    choices: Choices | Callable[[Status], Choices] | None = None  # select
    on: Any = True  # switch: the go-e values for on and off
    off: Any = False
    turn_on: str | None = None  # switch: on cannot be sent alone; this says how instead
    press: Any = True  # press: the value a press sends
    max_length: int = 32  # text
    read_back: bool = True  # False: the charger does not report the key (rst, ids)
    unit_hint: str | None = None  # what the go-e unit is, for messages (Wh, s)

    def choices_for(self, status: Status) -> Choices:
        if self.choices is None:
            return {}
        return self.choices(status) if callable(self.choices) else self.choices


@dataclass(frozen=True, kw_only=True)
class EntityDescription:
    key: str  # topic leaf, unique_id suffix and key in the JSON state
    component: Component
    name: str
    reads: tuple[str, ...] = ()  # go-e keys the value needs (the status filter)
    value: ValueFn | None = None  # None: the entity has no state (a button)
    device_class: str | None = None
    state_class: str | None = None
    unit: str | None = None
    entity_category: Literal["diagnostic", "config"] | None = None
    icon: str | None = None
    options: tuple[str, ...] = ()
    precision: int | None = None
    enabled_by_default: bool = True
    command: str | None = None  # a named service instead of the entity's own command
    write: Write | None = None
    needs_car: bool = False  # unavailable while no car is connected
    # Which reported keys mean the charger has this entity; default: every key it reads.
    present_if: Callable[[Set[str]], bool] | None = None
    pattern: str | None = None  # text: what HA lets users type
    doc: str = ""  # one line for the entity table: what it is for
    # The range a charger can measure (default: PLAUSIBLE for its unit).
    plausible: tuple[float, float] | None = None
    # The name Home Assistant shows, when it follows what the charger reports (a card's
    # name), from the keys in name_reads; `name` while it gives None. The key, so the
    # unique_id and entity id, stays: a renamed card renames its entity.
    name_from: NameFn | None = None
    name_reads: tuple[str, ...] = ()

    def state(self, status: Status) -> StateValue:
        """The entity's state: its value function, then the rules every state obeys -
        text without control characters and within HA's length, a number within what
        a charger measures. Raises Unreadable as the value functions do."""
        assert self.value is not None, f"{self.key} has no state"
        value = self.value(status)
        if isinstance(value, str):
            return clean_text(value)
        if is_number(value):
            bounds = self.plausible or PLAUSIBLE.get(self.unit or "")
            if bounds is not None and not bounds[0] <= value <= bounds[1]:
                raise Unreadable(
                    f"{', '.join(self.reads)}: {describe(value)} {self.unit} is beyond what"
                    f" a charger measures ({bounds[0]:g} to {bounds[1]:g} {self.unit})"
                )
            if value == 0:
                # JSON keeps -0.0's sign: the JSON state said -0.0 beside the leaf's 0,
                # and the status page "-0 W".
                return 0 if isinstance(value, int) else 0.0
        return value

    @property
    def command_service(self) -> str | None:
        """The service its command topic runs: a named one, or its own write."""
        if self.command is not None:
            return self.command
        return self.key if self.write is not None else None

    def present(self, keys: Set[str]) -> bool:
        """Whether a charger that reports these keys has this entity."""
        if self.present_if is not None:
            return self.present_if(keys)
        return all(key in keys for key in self.reads if not key.startswith(ADDED_KEY_PREFIX))
