"""Topic layout and Home Assistant discovery payloads, rendered from the catalogue.

Pure functions: given the configured names and what the charger told us about
itself, say which topics exist and what their discovery configs are.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Any

from goe2mqtt import PROJECT_URL, __version__
from goe2mqtt.catalogue import (
    BASELINE_KEYS,
    DEVICE_KEYS,
    ENTITIES,
    STATE_ENTITIES,
    UNKNOWN,
    EntityDescription,
    Status,
    reported_keys,
)
from goe2mqtt.catalogue.writes import number_range
from goe2mqtt.commands.services import PRESS

ORIGIN = {"name": "goe2mqtt", "sw_version": __version__, "support_url": PROJECT_URL}
# State topics say null for unknown (what JSON readers such as Node-RED understand);
# Home Assistant's MQTT entities want the text None for that.
UNKNOWN_TEMPLATE = f"{{{{ None if value == '{UNKNOWN}' else value }}}}"
ONLINE = "online"
OFFLINE = "offline"
RESULT_LEAF = "result"
BRIDGE_LEAF = "bridge"  # {base}/bridge/...: the bridge's own topics (no charger has this name)


@dataclass(frozen=True)
class Topics:
    """Where everything of one installation lives under the base topic."""

    base: str
    # With shards every instance has its own bridge topics: one instance's last will
    # must not make the chargers of the others unavailable.
    shard: int | None = None

    @property
    def bridge(self) -> str:
        suffix = "" if self.shard is None else f"/shard-{self.shard}"
        return f"{self.base}/{BRIDGE_LEAF}{suffix}"

    @property
    def bridge_availability(self) -> str:
        return f"{self.bridge}/availability"

    @property
    def bridge_info(self) -> str:
        return f"{self.bridge}/info"

    @property
    def command_filter(self) -> str:
        return f"{self.base}/+/cmd/+"

    def state(self, charger: str, key: str) -> str:
        return f"{self.base}/{charger}/{key}"

    def json_state(self, charger: str) -> str:
        return f"{self.base}/{charger}/state"

    def availability(self, charger: str) -> str:
        return f"{self.base}/{charger}/availability"

    def command(self, charger: str, service: str) -> str:
        return f"{self.base}/{charger}/cmd/{service}"

    def result(self, charger: str) -> str:
        return f"{self.base}/{charger}/cmd/{RESULT_LEAF}"

    @property
    def availability_filter(self) -> str:
        return f"{self.base}/+/availability"

    def charger_of_availability(self, topic: str) -> str | None:
        """The charger whose availability topic this is, or None for anything else."""
        prefix, suffix = f"{self.base}/", "/availability"
        if not (topic.startswith(prefix) and topic.endswith(suffix)):
            return None
        name = topic[len(prefix) : -len(suffix)]
        return None if name in ("", BRIDGE_LEAF) or "/" in name else name

    def charger_retained(self, charger: str) -> list[str]:
        """Every retained topic the bridge may have published for one charger."""
        return [
            self.availability(charger),
            self.json_state(charger),
            *(self.state(charger, entity.key) for entity in STATE_ENTITIES),
        ]

    def parse_command(self, topic: str) -> tuple[str, str] | None:
        """(charger, service) of a command topic, or None for anything else."""
        prefix = f"{self.base}/"
        if not topic.startswith(prefix):
            return None
        parts = topic[len(prefix) :].split("/")
        if len(parts) != 3 or parts[1] != "cmd" or not parts[0] or not parts[2]:
            return None
        return parts[0], parts[2]


def node_id(base_topic: str) -> str:
    """Discovery node_id: the base topic squeezed into [a-zA-Z0-9_-]."""
    return re.sub(r"[^a-zA-Z0-9_-]", "_", base_topic)


def discovery_filter(prefix: str, base_topic: str) -> str:
    """Matches every config this installation could have published, and nothing else."""
    return f"{prefix}/+/{node_id(base_topic)}/+/config"


def discovery_topic(prefix: str, base_topic: str, charger: str, entity: EntityDescription) -> str:
    return f"{prefix}/{entity.component}/{node_id(base_topic)}/{charger}_{entity.key}/config"


def name_collisions(chargers: Sequence[str]) -> list[str]:
    """Charger names whose entities would share discovery topics and entity ids
    (garage + card_0_energy = garage_card_0 + energy): one problem per pair, naming
    both keys."""
    owner: dict[str, int] = {}
    clashes: dict[tuple[int, int], str] = {}  # (index, earlier index) -> a shared id
    for index, name in enumerate(chargers):
        for entity in ENTITIES:
            object_id = f"{name}_{entity.key}"
            other = owner.setdefault(object_id, index)
            if other != index:
                clashes.setdefault((index, other), object_id)
    return [
        f"chargers[{index}].name: '{chargers[index]}' and chargers[{other}].name"
        f" '{chargers[other]}' would share Home Assistant entities (both make {shared}):"
        " rename one of them"
        for (index, other), shared in clashes.items()
    ]


def expected_discovery_topics(prefix: str, base_topic: str, chargers: Iterable[str]) -> set[str]:
    return {
        discovery_topic(prefix, base_topic, name, entity)
        for name in chargers
        for entity in ENTITIES
    }


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
    contacted: bool = False  # False: the charger never answered, keys are the baseline

    @classmethod
    def from_status(cls, status: Status, keys: frozenset[str] | None = None) -> DeviceFacts:
        """From one status; `keys` the charger has (default: the ones this status holds)."""
        model, firmware = status.get("typ"), status.get("fwv")
        keys = reported_keys(status) if keys is None else keys
        return cls(
            model=model if isinstance(model, str) else None,
            sw_version=firmware if isinstance(firmware, str) else None,
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
        }

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> DeviceFacts | None:
        """Facts remembered from an earlier run (not contacted in this one); None for
        anything that does not read as such."""
        try:
            model, sw_version = data["model"], data["sw_version"]
            keys = frozenset(str(key) for key in data["keys"])
            ranges = tuple((str(k), float(low), float(high)) for k, low, high in data["ranges"])
            choices = tuple((str(k), tuple(str(o) for o in opts)) for k, opts in data["choices"])
        except (KeyError, TypeError, ValueError):
            return None
        if not (model is None or isinstance(model, str)):
            return None
        if not (sw_version is None or isinstance(sw_version, str)):
            return None
        return cls(model, sw_version, keys, ranges, choices, contacted=False)


# Entities whose discovery follows the charger's state: every number (its range follows
# the charger's limits, and must hold the value it shows), selects of card names.
_FOLLOWING_RANGES = tuple(e for e in ENTITIES if e.write is not None and e.component == "number")
_FOLLOWING_CHOICES = tuple(
    e for e in ENTITIES if e.write is not None and callable(e.write.choices)
)
# The keys discovery facts depend on: a status that changed none of them (and no key
# appeared or went) leaves discovery as it is.
FACT_KEYS: frozenset[str] = frozenset(
    {"typ", "fwv", *DEVICE_KEYS}
    | {key for e in (*_FOLLOWING_RANGES, *_FOLLOWING_CHOICES) for key in e.reads}
)


def _shown_range(entity: EntityDescription, status: Status) -> tuple[float, float]:
    """The range HA's number gets: the real one, widened to hold the current value
    (HA drops a state outside min..max as an error; a set above the ceiling is still
    refused, with the reason, by the command)."""
    assert entity.write is not None
    low, high, _ = number_range(entity.write, status)
    try:
        value = entity.value(status) if entity.value is not None else None
    except Exception:  # an unreadable value shows as unknown: nothing to make room for
        value = None
    if isinstance(value, int | float) and not isinstance(value, bool):
        low, high = min(low, value), max(high, value)
    return low, high


def device_block(name: str, serial: str, facts: DeviceFacts) -> dict[str, Any]:
    device: dict[str, Any] = {
        "identifiers": [f"goe_{serial}"],
        "name": name,
        "manufacturer": "go-e",
        "model": facts.model or "go-e Charger",
        "serial_number": serial,
    }
    if facts.sw_version:
        device["sw_version"] = facts.sw_version
    return device


def _options(entity: EntityDescription, facts: DeviceFacts) -> list[str]:
    for key, options in facts.choices:
        if key == entity.key:
            return list(options)
    if entity.options:
        return list(entity.options)
    if entity.write is not None:
        return list(entity.write.choices_for({}).values())
    return []


def _number_limits(entity: EntityDescription, facts: DeviceFacts) -> dict[str, Any]:
    write = entity.write
    assert write is not None, f"number {entity.key} declares no write"
    low, high, _ = number_range(write, {})
    for key, dynamic_low, dynamic_high in facts.ranges:
        if key == entity.key:
            low, high = dynamic_low, dynamic_high
    return {"min": low, "max": high, "step": write.step, "mode": "box"}


def entity_config(
    entity: EntityDescription,
    *,
    topics: Topics,
    charger: str,
    serial: str,
    facts: DeviceFacts,
) -> dict[str, Any]:
    availability: list[dict[str, str]] = [
        {"topic": topics.bridge_availability},
        {"topic": topics.availability(charger)},
    ]
    if entity.needs_car:
        availability.append(
            {
                "topic": topics.state(charger, "car_connected"),
                "payload_available": "true",
                "payload_not_available": "false",
            }
        )
    config: dict[str, Any] = {
        "name": entity.name,
        "unique_id": f"goe_{serial}_{entity.key}",
        # Current HA takes the entity id from here; old HA derives the same id from
        # device name + entity name. object_id is not sent: new HA warns about it.
        "default_entity_id": f"{entity.component}.{charger}_{entity.key}",
        "availability": availability,
        "availability_mode": "all",
        "device": device_block(charger, serial, facts),
        "origin": ORIGIN,
    }
    if entity.value is not None:
        config["state_topic"] = topics.state(charger, entity.key)
        config["value_template"] = UNKNOWN_TEMPLATE
    service = entity.command_service
    if service is not None:
        config["command_topic"] = topics.command(charger, service)
        # HA then publishes at QoS 1: a press while the bridge restarts waits in its session.
        config["qos"] = 1
    optional = {
        "device_class": entity.device_class,
        "state_class": entity.state_class,
        "unit_of_measurement": entity.unit,
        "entity_category": entity.entity_category,
        "icon": entity.icon,
        "suggested_display_precision": entity.precision,
    }
    config.update({k: v for k, v in optional.items() if v is not None})
    if entity.component in ("select", "sensor") and (options := _options(entity, facts)):
        config["options"] = options
    if not entity.enabled_by_default:
        config["enabled_by_default"] = False
    if entity.component in ("binary_sensor", "switch"):
        config["payload_on"] = "true"
        config["payload_off"] = "false"
        if entity.component == "switch":
            config["state_on"] = "true"
            config["state_off"] = "false"
    elif entity.component == "number":
        config.update(_number_limits(entity, facts))
    elif entity.component == "text":
        if entity.pattern:
            config["pattern"] = entity.pattern
        if entity.write is not None:
            config["max"] = entity.write.max_length
    elif entity.component == "button":
        config["payload_press"] = PRESS
    return config


def render_discovery(
    *,
    prefix: str,
    topics: Topics,
    charger: str,
    serial: str,
    facts: DeviceFacts,
) -> tuple[dict[str, str], list[EntityDescription]]:
    """topic -> JSON payload for every entity the charger has, and the entities it
    has not (whose configs a firmware change may have left behind)."""
    configs: dict[str, str] = {}
    absent: list[EntityDescription] = []
    for entity in ENTITIES:
        if not entity.present(facts.keys):
            absent.append(entity)
            continue
        configs[discovery_topic(prefix, topics.base, charger, entity)] = json.dumps(
            entity_config(entity, topics=topics, charger=charger, serial=serial, facts=facts),
            sort_keys=True,
            ensure_ascii=False,
        )
    return configs, absent
