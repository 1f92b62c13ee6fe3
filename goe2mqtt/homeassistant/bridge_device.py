"""The bridge itself as a Home Assistant device: its health where users look.

Its sensors read {bridge}/info (version, chargers online, commands, last error,
uptime) and are unavailable when the bridge is.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from goe2mqtt import __version__
from goe2mqtt.catalogue import ENTITIES
from goe2mqtt.homeassistant.discovery import ORIGIN, entity_object_id, node_id
from goe2mqtt.mqtt.topics import Topics
from goe2mqtt.util.text import slug, without_none


@dataclass(frozen=True, kw_only=True)
class BridgeSensor:
    """One value of {bridge}/info shown as an HA sensor of the bridge device."""

    key: str
    name: str
    template: str  # Jinja over the info JSON
    unit: str | None = None
    device_class: str | None = None
    state_class: str | None = None
    entity_category: str | None = "diagnostic"
    icon: str | None = None


BRIDGE_SENSORS: tuple[BridgeSensor, ...] = (
    BridgeSensor(key="version", name="Version", template="{{ value_json.version }}",
                 icon="mdi:information-outline"),
    BridgeSensor(key="chargers_online", name="Chargers online",
                 template="{{ value_json.chargers_online }}", state_class="measurement",
                 entity_category=None, icon="mdi:ev-station"),
    BridgeSensor(key="commands_done", name="Commands done",
                 template="{{ value_json.commands.ok }}", state_class="total_increasing",
                 icon="mdi:check-circle-outline"),
    BridgeSensor(key="commands_rejected", name="Commands rejected",
                 template="{{ value_json.commands.rejected }}",
                 state_class="total_increasing", icon="mdi:cancel"),
    BridgeSensor(key="commands_failed", name="Commands failed",
                 template="{{ value_json.commands.failed }}", state_class="total_increasing",
                 icon="mdi:alert-circle-outline"),
    BridgeSensor(key="last_error", name="Last error",
                 template="{{ value_json.last_error.error if value_json.last_error"
                 " else 'none' }}", icon="mdi:alert-outline"),
    BridgeSensor(key="command_journal", name="Command journal",
                 template="{{ 'ok' if value_json.journal.ok else 'failing: '"
                 " ~ value_json.journal.error[:200] }}", icon="mdi:database-check-outline"),
    BridgeSensor(key="uptime", name="Uptime", template="{{ value_json.uptime }}", unit="s",
                 device_class="duration", icon="mdi:timer-outline"),
)  # fmt: skip


def bridge_node_id(topics: Topics) -> str:
    """Its own node: no charger's object ids can collide with the bridge's."""
    suffix = "" if topics.shard is None else f"_shard_{topics.shard}"
    return f"{node_id(topics.base)}_bridge{suffix}"


def bridge_name(shard: int | None) -> str:
    return "goe2mqtt" if shard is None else f"goe2mqtt shard {shard}"


def bridge_id_collisions(chargers: Sequence[str], shards: int | None) -> list[str]:
    """Charger names one of whose sensors would take the id of the bridge device's own
    (goe2mqtt_last + error is sensor.goe2mqtt_last_error, the bridge's Last error): Home
    Assistant gives whichever came second an id ending _2. Every shard's bridge counts:
    the chargers are the whole fleet's."""
    devices = [None] if shards is None else [None, *range(shards)]
    bridge = {f"{slug(bridge_name(s))}_{b.key}" for s in devices for b in BRIDGE_SENSORS}
    problems = []
    sensors = [entity.key for entity in ENTITIES if entity.component == "sensor"]
    for index, name in enumerate(chargers):
        ids = slug(name)
        for key in sensors:
            object_id = entity_object_id(ids, key)
            if object_id in bridge:
                problems.append(
                    f"chargers[{index}].name: '{name}' would share Home Assistant's"
                    f" sensor.{object_id} with the bridge's own device: rename the charger"
                )
                break
    return problems


def render_bridge_discovery(*, prefix: str, topics: Topics) -> dict[str, str]:
    """topic -> JSON payload for the bridge device's sensors."""
    node = bridge_node_id(topics)
    name = bridge_name(topics.shard)
    # The entity ids old HA derives (device name + entity name) and new HA is told.
    object_prefix = slug(name)
    device = {
        "identifiers": [f"goe2mqtt_{node}"],
        "name": name,
        "manufacturer": "goe2mqtt",
        "model": "go-e to MQTT bridge",
        "sw_version": __version__,
    }
    configs: dict[str, str] = {}
    for sensor in BRIDGE_SENSORS:
        config: dict[str, Any] = {
            "name": sensor.name,
            "unique_id": f"{node}_{sensor.key}",
            "default_entity_id": f"sensor.{object_prefix}_{sensor.key}",
            "state_topic": topics.bridge_info,
            "value_template": sensor.template,
            "availability_topic": topics.bridge_availability,
            "device": device,
            "origin": ORIGIN,
        }
        optional = {
            "unit_of_measurement": sensor.unit,
            "device_class": sensor.device_class,
            "state_class": sensor.state_class,
            "entity_category": sensor.entity_category,
            "icon": sensor.icon,
        }
        config.update(without_none(optional))
        topic = f"{prefix}/sensor/{node}/{sensor.key}/config"
        configs[topic] = json.dumps(config, sort_keys=True, ensure_ascii=False)
    return configs
