"""What an entity is: its description, and the types its value functions speak."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any, Literal

Status = Mapping[str, Any]
StateValue = str | int | float | bool | None
ValueFn = Callable[[Status], StateValue]
Component = Literal["sensor", "binary_sensor", "number", "select", "button"]


class Unreadable(ValueError):
    """A raw value that cannot become a state; the message names the key."""


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
    command: str | None = None  # the service its command topic runs
    needs_car: bool = False  # unavailable while no car is connected
    limits: tuple[str, str] | None = None  # number: go-e keys of min and max
