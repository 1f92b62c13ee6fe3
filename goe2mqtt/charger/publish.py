"""What one charger shows on MQTT: its availability, its discovery, its states.

The charger loop decides when a status arrives (polled or pushed); this maps it
through the view and publishes what changed, and keeps the discovery in step with
the keys the charger has.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Mapping
from typing import Any, Protocol

import structlog

from goe2mqtt.catalogue.facts import DeviceFacts
from goe2mqtt.charger.view import ChargerView
from goe2mqtt.mqtt.discovery import discovery_topic, render_discovery
from goe2mqtt.mqtt.topics import OFFLINE, ONLINE, Topics

log = structlog.get_logger()


class Publisher(Protocol):
    async def publish_retained(self, topic: str, payload: str | bytes) -> None: ...


class ChargerOutput:
    def __init__(
        self,
        name: str,
        publisher: Publisher,
        *,
        topics: Topics,
        discovery_prefix: str | None,
        leaf_topics: bool,
        on_facts: Callable[[DeviceFacts], None],
    ) -> None:
        self._name = name
        self._publisher = publisher
        self._topics = topics
        self._discovery_prefix = discovery_prefix
        self._leaf_topics = leaf_topics  # False: the JSON state topic only
        self._on_facts = on_facts
        self.view = ChargerView()
        self.facts: DeviceFacts | None = None  # what discovery last announced

    async def availability(self, *, online: bool) -> None:
        await self._publisher.publish_retained(
            self._topics.availability(self._name), ONLINE if online else OFFLINE
        )

    async def discovery(self, facts: DeviceFacts, serial: str) -> None:
        if self._discovery_prefix is None:
            return
        before, self.facts = self.facts, facts
        if facts.contacted:
            self._on_facts(facts)
        configs, absent = render_discovery(
            prefix=self._discovery_prefix,
            topics=self._topics,
            charger=self._name,
            serial=serial,
            facts=facts,
        )
        # The publisher keeps what it published: an unchanged config costs a comparison.
        for topic, payload in configs.items():
            await self._publisher.publish_retained(topic, payload)
        if not facts.contacted:
            return  # not heard from yet: what an earlier run announced stays
        had = before.keys if before is not None and before.contacted else None
        first_contact = had is None
        for entity in absent:
            # At first contact an earlier run (or firmware) may have announced it.
            if had is not None and not entity.present(had):
                continue
            if not first_contact:
                log.info("entity_removed", charger=self._name, entity=entity.key,
                         reason="the charger no longer reports its keys")  # fmt: skip
            topic = discovery_topic(self._discovery_prefix, self._topics.base, self._name, entity)
            await self._publisher.publish_retained(topic, b"")
            if entity.value is not None:
                await self._publisher.publish_retained(
                    self._topics.state(self._name, entity.key), b""
                )

    async def take(
        self,
        status: Mapping[str, Any],
        bridge_values: Mapping[str, Any],
        changed: set[str] | None,
        serial: str | None,
    ) -> list[str]:
        """Map a status through the view; publish the discovery and states it changed."""
        update = self.view.update(status, bridge_values, changed)
        if update.facts is not None and serial is not None:
            await self.discovery(update.facts, serial)
        for key, reason in update.new_problems.items():
            log.warning("value_unreadable", charger=self._name, entity=key, reason=reason)
        if not update.changed:
            return update.changed  # the common case: a quiet charger costs one comparison
        if self._leaf_topics:
            for key in update.changed:
                await self._publisher.publish_retained(
                    self._topics.state(self._name, key), self.view.text(key)
                )
        await self._publisher.publish_retained(
            self._topics.json_state(self._name),
            json.dumps(self.view.states, sort_keys=True, ensure_ascii=False, allow_nan=False),
        )
        return update.changed
