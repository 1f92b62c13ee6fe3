"""Home Assistant discovery as a pure plan, rendered from the catalogue.

Given the configured names and what the charger told us about itself (DeviceFacts),
say which configs to publish and which entities are absent: the caller publishes the
one and clears the other.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterable, Sequence
from typing import Any, NamedTuple

from goe2mqtt import PROJECT_URL, __version__
from goe2mqtt.catalogue import (
    ENTITIES,
    UNKNOWN,
    EntityDescription,
)
from goe2mqtt.catalogue.facts import DeviceFacts
from goe2mqtt.catalogue.model import PRESS
from goe2mqtt.catalogue.writes import number_range
from goe2mqtt.mqtt.topics import Topics
from goe2mqtt.util.text import slug, without_none

ORIGIN = {"name": "goe2mqtt", "sw_version": __version__, "support_url": PROJECT_URL}
# State topics say null for unknown (what JSON readers such as Node-RED understand);
# Home Assistant's MQTT entities want the text None for that.
UNKNOWN_TEMPLATE = f"{{{{ None if value == '{UNKNOWN}' else value }}}}"


def node_id(base_topic: str) -> str:
    """Discovery node_id: the base topic squeezed into [a-zA-Z0-9_-]."""
    return re.sub(r"[^a-zA-Z0-9_-]", "_", base_topic)


def discovery_filter(prefix: str, base_topic: str) -> str:
    """Matches every config this installation could have published, and nothing else."""
    return f"{prefix}/+/{node_id(base_topic)}/+/config"


def discovery_topic(prefix: str, base_topic: str, charger: str, entity: EntityDescription) -> str:
    return f"{prefix}/{entity.component}/{node_id(base_topic)}/{charger}_{entity.key}/config"


def entity_object_id(charger_ids: str, key: str) -> str:
    """The id Home Assistant makes of a charger's entity: ``charger_ids`` is slug() of
    the charger's name (each run of - and _ one _, none at the ends, as its slugify;
    garage-1 and garage_1 are one), the catalogue's keys are ids already. Slugged once
    per charger, not per entity: a fleet of 10 000 spent 2.7 s of every start on it."""
    return f"{charger_ids}_{key}" if charger_ids else key


def name_collisions(chargers: Sequence[str]) -> list[str]:
    """Charger names whose entities would share discovery topics and entity ids
    (garage + card_0_energy = garage_card_0 + energy), as Home Assistant makes the ids
    (garage-1 and garage_1 both make garage_1_energy_total): one problem per pair,
    naming both keys."""
    owner: dict[str, int] = {}
    clashes: dict[tuple[int, int], str] = {}  # (index, earlier index) -> a shared id
    for index, name in enumerate(chargers):
        ids = slug(name)
        for entity in ENTITIES:
            object_id = entity_object_id(ids, entity.key)
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


class ExpectedDiscovery:
    """Whether a config topic is one the configured chargers announce or may announce
    (any entity of the catalogue): the topics expected_discovery_topics() makes, told
    from the topic itself instead of holding ~140 of them per charger."""

    def __init__(self, prefix: str, base_topic: str, chargers: Iterable[str]) -> None:
        self._head, self._node = f"{prefix}/", node_id(base_topic)
        self._chargers = frozenset(chargers)

    def __contains__(self, topic: object) -> bool:
        tail = "/config"
        if not (isinstance(topic, str) and topic.startswith(self._head) and topic.endswith(tail)):
            return False
        parts = topic[len(self._head) : -len(tail)].split("/")
        if len(parts) != 3 or parts[1] != self._node:
            return False
        component, _, object_id = parts
        keys = _KEYS_OF.get(component, frozenset())
        # {charger}_{key}: neither holds a "/", both may hold a "_": try each "_".
        cut = object_id.find("_")
        while cut != -1:
            if object_id[:cut] in self._chargers and object_id[cut + 1 :] in keys:
                return True
            cut = object_id.find("_", cut + 1)
        return False


_KEYS_OF: dict[str, frozenset[str]] = {
    component: frozenset(e.key for e in ENTITIES if e.component == component)
    for component in {e.component for e in ENTITIES}
}


def device_block(
    name: str, serial: str, model: str | None, sw_version: str | None
) -> dict[str, Any]:
    device: dict[str, Any] = {
        "identifiers": [f"goe_{serial}"],
        "name": name,
        "manufacturer": "go-e",
        "model": model or "go-e Charger",
        "serial_number": serial,
    }
    if sw_version:
        device["sw_version"] = sw_version
    return device


class Shown(NamedTuple):
    """What of a charger's facts one entity's config shows: entity_config sees the
    facts only through this (homeassistant/configs.py builds on that)."""

    model: str | None
    sw_version: str | None
    name: str  # the charger's (a card's), else the catalogue's
    options: tuple[str, ...]  # a select's or an enum sensor's
    limits: tuple[float, float] | None  # a number's


def shown_for(entity: EntityDescription, facts: DeviceFacts) -> Shown:
    selectable = entity.component in ("select", "sensor")
    return Shown(
        model=facts.model,
        sw_version=facts.sw_version,
        name=_name(entity, facts),
        options=tuple(_options(entity, facts)) if selectable else (),
        limits=_limits(entity, facts) if entity.component == "number" else None,
    )


def _name(entity: EntityDescription, facts: DeviceFacts) -> str:
    """The name the charger gives it now (a card's), else the catalogue's."""
    for key, name in facts.names:
        if key == entity.key:
            return name
    return entity.name


def _options(entity: EntityDescription, facts: DeviceFacts) -> list[str]:
    for key, options in facts.choices:
        if key == entity.key:
            return list(options)
    if entity.options:
        return list(entity.options)
    if entity.write is not None:
        return list(entity.write.choices_for({}).values())
    return []


def _limits(entity: EntityDescription, facts: DeviceFacts) -> tuple[float, float]:
    write = entity.write
    assert write is not None, f"number {entity.key} declares no write"
    low, high, _ = number_range(write, {})
    for key, dynamic_low, dynamic_high in facts.ranges:
        if key == entity.key:
            low, high = dynamic_low, dynamic_high
    return low, high


def entity_config(
    entity: EntityDescription,
    *,
    topics: Topics,
    charger: str,
    serial: str,
    shown: Shown,
    currency: str = "EUR",
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
        "name": shown.name,
        "unique_id": f"goe_{serial}_{entity.key}",
        # Current HA takes the entity id from here; old HA derives the same id from
        # device name + entity name (but for names that follow a card: the README says
        # so). object_id is not sent: new HA warns about it.
        "default_entity_id": f"{entity.component}.{charger}_{entity.key}",
        "availability": availability,
        "availability_mode": "all",
        "device": device_block(charger, serial, shown.model, shown.sw_version),
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
        # A cost is in the charger's tariff currency (the ledger's sessions).
        "unit_of_measurement": currency if entity.device_class == "monetary" else entity.unit,
        "entity_category": entity.entity_category,
        "icon": entity.icon,
        "suggested_display_precision": entity.precision,
    }
    config.update(without_none(optional))
    if shown.options:
        config["options"] = list(shown.options)
    if not entity.enabled_by_default:
        config["enabled_by_default"] = False
    if entity.component in ("binary_sensor", "switch"):
        config["payload_on"] = "true"
        config["payload_off"] = "false"
        if entity.component == "switch":
            config["state_on"] = "true"
            config["state_off"] = "false"
    elif entity.component == "number":
        assert entity.write is not None
        assert shown.limits is not None
        low, high = shown.limits
        config.update({"min": low, "max": high, "step": entity.write.step, "mode": "box"})
    elif entity.component == "text":
        if entity.pattern:
            config["pattern"] = entity.pattern
        if entity.write is not None:
            config["max"] = entity.write.max_length
    elif entity.component == "button":
        config["payload_press"] = PRESS
    return config


def render_config(
    entity: EntityDescription,
    *,
    topics: Topics,
    charger: str,
    serial: str,
    shown: Shown,
    currency: str = "EUR",
) -> str:
    """One entity's config as the broker gets it (JSON, keys sorted)."""
    config = entity_config(
        entity, topics=topics, charger=charger, serial=serial, shown=shown, currency=currency
    )
    return json.dumps(config, sort_keys=True, ensure_ascii=False)


def render_discovery(
    *,
    prefix: str,
    topics: Topics,
    charger: str,
    serial: str,
    facts: DeviceFacts,
    currency: str = "EUR",
) -> tuple[dict[str, str], list[EntityDescription]]:
    """topic -> JSON payload for every entity the charger has, and the entities it
    has not (whose configs a firmware change may have left behind). Each rendered
    whole: homeassistant/configs.py builds the same from templates."""
    configs: dict[str, str] = {}
    for entity in ENTITIES:
        if entity.present(facts.keys):
            configs[discovery_topic(prefix, topics.base, charger, entity)] = render_config(
                entity,
                topics=topics,
                charger=charger,
                serial=serial,
                shown=shown_for(entity, facts),
                currency=currency,
            )
    return configs, absent_entities(facts)


def absent_entities(facts: DeviceFacts) -> list[EntityDescription]:
    """The entities a charger with these facts does not have."""
    return [entity for entity in ENTITIES if not entity.present(facts.keys)]
