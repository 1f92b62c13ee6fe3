"""One charger's discovery configs as a retained family, built from shared templates.

The MQTT session's store (mqtt/retained.py) keeps a charger's DiscoveryConfigs - what
its configs are built from - instead of the ~50 KB they are, and builds them whenever
they are sent: when they changed, at a reconnect, at Home Assistant's birth (for 1000
chargers 130 000 configs at once). Chargers with the same facts have configs that
differ only in the charger's name and serial, so a config is rendered once with markers
in their place and kept as a format string; a charger's config is that string filled
with its own name and serial, escaped as JSON escapes them. JSON escapes a string one
character at a time, so the filled text is the text rendering the config whole gives
(discovery.render_discovery does that; tests/unit/test_discovery.py compares both). A
template is checked once, when made, against a whole rendering; one that differs (a
marker anywhere else) is not used and its configs are rendered whole.
"""

from __future__ import annotations

import functools
import json
from collections.abc import Iterator

from goe2mqtt.catalogue import ENTITIES, ENTITIES_BY_KEY, EntityDescription
from goe2mqtt.catalogue.facts import DeviceFacts
from goe2mqtt.homeassistant.discovery import (
    Shown,
    discovery_topic,
    node_id,
    render_config,
    shown_for,
)
from goe2mqtt.mqtt.families import FAMILY
from goe2mqtt.mqtt.topics import Topics

# Templates kept (~1 KB each): a fleet whose facts are alike needs one per entity (~130);
# chargers with facts of their own (card names) add a few each, and the least recently
# used go (their configs are then rendered whole: slower, the same bytes).
TEMPLATES_KEPT = 1024
# No name, serial, topic or text from a charger holds a NUL (clean_text drops them).
_CHARGER, _SERIAL = "\x00charger\x00", "\x00serial\x00"
_CHECK = ("garage-2", "012345")  # a name and serial the template is checked with


def escaped(text: str) -> str:
    """``text`` as JSON writes it inside a string."""
    return json.dumps(text, ensure_ascii=False)[1:-1]


@functools.lru_cache(maxsize=TEMPLATES_KEPT)
def _template(key: str, topics: Topics, currency: str, seen: Shown, exactly: str) -> str | None:
    """The entity's config as a format string ({0}: the charger's name, {1}: its serial,
    both escaped), None if filling it does not give what rendering it whole does.
    ``exactly`` (the limits' repr) tells apart what == does not: 16 and 16.0, 0.0 and
    -0.0 are equal keys, and JSON writes them differently."""
    entity = ENTITIES_BY_KEY[key]
    text = render_config(
        entity, topics=topics, charger=_CHARGER, serial=_SERIAL, shown=seen, currency=currency
    )
    template = (
        text.replace("{", "{{")
        .replace("}", "}}")
        .replace(escaped(_CHARGER), "{0}")
        .replace(escaped(_SERIAL), "{1}")
    )
    name, serial = _CHECK
    whole = render_config(
        entity, topics=topics, charger=name, serial=serial, shown=seen, currency=currency
    )
    return template if template.format(escaped(name), escaped(serial)) == whole else None


class DiscoveryConfigs:
    """A charger's discovery configs as a retained family (mqtt/retained.Family): what
    they are built from, not what they are; built again whenever they are sent."""

    __slots__ = ("_charger", "_currency", "_facts", "_prefix", "_serial", "_topics", "key", "size")

    def __init__(
        self,
        *,
        prefix: str,
        topics: Topics,
        charger: str,
        serial: str,
        facts: DeviceFacts,
        currency: str = "EUR",
    ) -> None:
        self.key = f"{FAMILY}discovery/{prefix}/{node_id(topics.base)}/{charger}"
        self.size = sum(1 for entity in ENTITIES if entity.present(facts.keys))
        self._prefix, self._topics, self._charger = prefix, topics, charger
        self._serial, self._facts, self._currency = serial, facts, currency

    def _sources(self) -> tuple[object, ...]:
        """What the configs are built from (not whether the charger was heard from);
        the ranges as written, since 16 == 16.0 but their JSON differs."""
        facts = self._facts
        return (
            self._prefix, self._topics, self._charger, self._serial, self._currency,
            facts.model, facts.sw_version, facts.keys, repr(facts.ranges), facts.choices,
            facts.names,
        )  # fmt: skip

    def __eq__(self, other: object) -> bool:
        """Equal configs build the same bytes."""
        return isinstance(other, DiscoveryConfigs) and self._sources() == other._sources()

    def __hash__(self) -> int:
        return hash(self._sources())

    def _entities(self) -> Iterator[EntityDescription]:
        keys = self._facts.keys
        return (entity for entity in ENTITIES if entity.present(keys))

    def topics(self) -> Iterator[str]:
        prefix, base, charger = self._prefix, self._topics.base, self._charger
        return (discovery_topic(prefix, base, charger, entity) for entity in self._entities())

    def members(self) -> Iterator[tuple[str, bytes]]:
        prefix, topics, charger, serial = self._prefix, self._topics, self._charger, self._serial
        facts, currency = self._facts, self._currency
        filling = escaped(charger), escaped(serial)
        for entity in self._entities():
            seen = shown_for(entity, facts)
            template = _template(entity.key, topics, currency, seen, repr(seen.limits))
            if template is None:
                text = render_config(
                    entity, topics=topics, charger=charger, serial=serial, shown=seen,
                    currency=currency,
                )  # fmt: skip
            else:
                text = template.format(*filling)
            yield discovery_topic(prefix, topics.base, charger, entity), text.encode()
