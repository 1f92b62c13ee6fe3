"""A site as a Home Assistant device: its mode and fuse to set, what it measured and gave.

Every entity reads the site's retained state ({base}/site/{site}/state) and is
unavailable when the bridge is; the select and the number send the site's commands.
The configs lie under the chargers' discovery node with object ids ``site_{site}_{key}``
(no charger's can be one: charger names 'site' and 'site_*' are refused while sites are
set), so that the stale-discovery filter of bridge/housekeeping.py removes those of a
site no longer configured, like a removed charger's; the site stays a device of its own.
"""

from __future__ import annotations

import json
from collections.abc import Iterable
from typing import Any

from goe2mqtt import __version__
from goe2mqtt.config.site import SiteSettings
from goe2mqtt.homeassistant.discovery import ORIGIN, node_id
from goe2mqtt.mqtt.topics import Topics
from goe2mqtt.util.text import slug


def site_node_id(topics: Topics, site: str) -> str:
    """The site's device and unique ids (its configs' topics use the chargers' node)."""
    return f"{node_id(topics.base)}_site_{site}"


def site_discovery_topics(*, prefix: str, topics: Topics,
                          sites: Iterable[SiteSettings]) -> set[str]:  # fmt: skip
    """Every config topic the configured sites announce (the rest under our node is stale)."""
    return {
        topic
        for site in sites
        for topic in render_site_discovery(prefix=prefix, topics=topics, site=site)
    }


def render_site_discovery(*, prefix: str, topics: Topics, site: SiteSettings) -> dict[str, str]:
    """topic -> JSON payload for one site's entities."""
    node = site_node_id(topics, site.name)
    base = f"{topics.base}/site/{site.name}"
    name = f"Site {site.name}"
    device = {
        "identifiers": [f"goe2mqtt_{node}"],
        "name": name,
        "manufacturer": "goe2mqtt",
        "model": "site controller (one fuse, several chargers)",
        "sw_version": __version__,
    }
    common = {
        "state_topic": f"{base}/state",
        "availability_topic": topics.bridge_availability,
        "device": device,
        "origin": ORIGIN,
    }
    entities: list[tuple[str, str, dict[str, Any]]] = [
        ("select", "mode", {
            "name": "Mode", "options": ["fuse", "pv", "off"],
            "value_template": "{{ value_json.mode }}",
            "command_topic": f"{base}/cmd/set_mode",
            "command_template": '{"mode": "{{ value }}"}', "icon": "mdi:transmission-tower",
        }),
        ("number", "fuse", {
            "name": "Fuse", "min": 6, "max": 1000, "step": 1, "mode": "box",
            "unit_of_measurement": "A", "device_class": "current",
            "value_template": "{{ value_json.fuse }}",
            "command_topic": f"{base}/cmd/set_fuse",
            "command_template": '{"fuse": {{ value }}}', "entity_category": "config",
        }),
        ("sensor", "meter_age", {
            "name": "Meter age", "unit_of_measurement": "s", "device_class": "duration",
            "state_class": "measurement", "entity_category": "diagnostic",
            "value_template": "{{ value_json.meter.age }}", "icon": "mdi:meter-electric",
        }),
        ("binary_sensor", "fallback", {
            "name": "Fallback", "device_class": "problem",
            "value_template": "{{ 'ON' if value_json.fallback else 'OFF' }}",
            "json_attributes_topic": f"{base}/state",
            "json_attributes_template": '{{ {"reason": value_json.fallback_reason} | tojson }}',
        }),
    ]  # fmt: skip
    for phase in ("l1", "l2", "l3"):
        entities.append(("sensor", f"available_{phase}", {
            "name": f"Available current {phase.upper()}", "unit_of_measurement": "A",
            "device_class": "current", "state_class": "measurement",
            "value_template": f"{{{{ value_json.room.{phase} if value_json.room else none"
                              " }}",
        }))  # fmt: skip
    for charger in site.chargers:
        entities.append(("sensor", f"allocated_{charger.name}", {
            "name": f"Allocated {charger.name}", "unit_of_measurement": "A",
            "device_class": "current", "state_class": "measurement",
            "value_template": f"{{{{ value_json.chargers['{charger.name}'].allocated }}}}",
        }))  # fmt: skip
    object_prefix = slug(name)
    configs: dict[str, str] = {}
    for component, key, fields in entities:
        config = {
            **common,
            **fields,
            "unique_id": f"{node}_{key}",
            "default_entity_id": f"{component}.{object_prefix}_{key}",
        }
        topic = f"{prefix}/{component}/{node_id(topics.base)}/site_{site.name}_{key}/config"
        configs[topic] = json.dumps(config, sort_keys=True, ensure_ascii=False)
    return configs
