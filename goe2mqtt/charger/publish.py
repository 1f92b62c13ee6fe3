"""What one charger shows on MQTT: its availability, its discovery, its states.

The charger loop decides when a status arrives (polled or pushed); this maps it
through the view and publishes what changed, and keeps the discovery in step with
the keys the charger has. What a pushing charger sends faster than MIN_INTERVAL is
merged: its latest status is published when the interval is over (one timer per
charger, only while it is that fast), so a key changing 750 times a second costs a
few publishes, and the last value is never lost.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from typing import Any, Protocol

import structlog

from goe2mqtt.catalogue.facts import DeviceFacts
from goe2mqtt.charger.state_family import StateTopics
from goe2mqtt.charger.view import ChargerView
from goe2mqtt.homeassistant.configs import DiscoveryConfigs
from goe2mqtt.homeassistant.discovery import absent_entities, discovery_topic
from goe2mqtt.mqtt.families import Family, LiveFamily
from goe2mqtt.mqtt.topics import OFFLINE, ONLINE, Topics

log = structlog.get_logger()

# A pushing charger's states go out at most this often (5 a second): enough for any
# dashboard, and a charger's own pace is one delta a second.
MIN_INTERVAL = 0.2


@dataclass
class _Held:
    """What arrived within MIN_INTERVAL of the last publish: published when it is over."""

    status: Mapping[str, Any]  # the latest (a new dict each time: see Charger._pushed)
    changed: set[str] | None  # every key changed since the view's last status; None: all
    serial: str | None


class Publisher(Protocol):
    async def publish_retained(
        self, topic: str, payload: str | bytes, *, vouches: Iterable[str] = ()
    ) -> None: ...

    async def publish_family(self, family: Family) -> None: ...

    async def publish_members(self, family: LiveFamily, topics: Iterable[str]) -> None: ...


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
        added_values: Callable[[], Mapping[str, Any]] = dict,
        min_interval: float = MIN_INTERVAL,
        currency: str = "EUR",
    ) -> None:
        self._name = name
        self._currency = currency  # the unit of its cost entities
        self._publisher = publisher
        self._topics = topics
        self._discovery_prefix = discovery_prefix
        self._leaf_topics = leaf_topics  # False: the JSON state topic only
        self._on_facts = on_facts
        self.view = ChargerView()
        # Its state topics: built from the view whenever they are sent, never held.
        self._states = StateTopics(self.view, topics, name, leaf_topics=leaf_topics)
        self.facts: DeviceFacts | None = None  # what discovery last announced
        self._added_values = added_values  # the added keys' values (PV feed, connection, session)
        self._min_interval = min_interval
        self._quiet_until = 0.0  # loop time: a pushed status before it is held
        self._held: _Held | None = None
        self._flushing: asyncio.Task[list[str]] | None = None  # the one timer, while held
        self._logged_problems: set[str] = set()  # entities whose unreadable value was logged
        self._announced_in_part = False  # the last facts announced came from part of a status

    async def availability(self, *, online: bool) -> None:
        # "online" says its states are there: the session sends them first if a re-send
        # still owes them (mqtt/vouches.py), a broker that lost its retained messages
        # held "online" without them. Only the states, not the discovery configs: those
        # go at the re-send's bulk pace (mqtt/pace.py), and the "online" behind them
        # would hold every later change and command result with it; Home Assistant
        # subscribes to an entity's states and availability when its config arrives,
        # the order of the two families matters to none of it. "offline" vouches for
        # nothing: ahead of stale states it says not to trust them.
        vouches = (self._states.key,) if online else ()
        await self._publisher.publish_retained(
            self._topics.availability(self._name), ONLINE if online else OFFLINE, vouches=vouches
        )

    async def discovery(self, facts: DeviceFacts, serial: str) -> None:
        if self._discovery_prefix is None:
            return
        before, self.facts = self.facts, facts
        if facts.contacted:
            self._on_facts(facts)
        # The publisher sends the configs that changed, and keeps what they are built
        # from to build them again when they must be sent again.
        await self._publisher.publish_family(
            DiscoveryConfigs(
                prefix=self._discovery_prefix,
                topics=self._topics,
                charger=self._name,
                serial=serial,
                facts=facts,
                currency=self._currency,
            )
        )
        absent = absent_entities(facts)
        if not facts.contacted:
            # Not heard from yet, or heard in part: what an earlier run announced stays.
            self._announced_in_part = facts is self.view.facts
            return
        # At first contact an earlier run may have announced what the charger lacks: all
        # else absent goes. Not after a picture heard in part (a charger on its own MQTT
        # between two full publishes): whole is only what every API v2 firmware has, and
        # the rest of a full publish may still be on its way - only what this run
        # announced from the part may go then, never what the charger has not told yet.
        told = before is not None and (before.contacted or self._announced_in_part)
        had = before.keys if before is not None and told else None
        first_contact = not (before is not None and before.contacted)
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
        changed: set[str] | None,
        serial: str | None,
        *,
        merge: bool = False,
    ) -> list[str]:
        """Map a status through the view; publish the discovery and states it changed.

        ``merge`` (a pushed status): within MIN_INTERVAL of the last publish it is held,
        and published with whatever follows when the interval is over; [] then.
        """
        loop = asyncio.get_running_loop()
        if merge and (self._held is not None or loop.time() < self._quiet_until):
            self._hold(status, changed, serial)
            return []
        held, self._held = self._held, None
        if held is not None and changed is not None:
            # Published now, with what waited: the view compares only the keys it is told.
            changed = None if held.changed is None else changed | held.changed
        update = self.view.update(status, self._added_values(), changed)
        if update.facts is not None and serial is not None:
            await self.discovery(update.facts, serial)
        for key, reason in update.new_problems.items():
            # Once per entity: a value flipping between garbage and sense must not log
            # each flip (at most one line per entity for the process's life).
            if key in self._logged_problems:
                log.debug("value_unreadable", charger=self._name, entity=key, reason=reason)
            else:
                self._logged_problems.add(key)
                log.warning("value_unreadable", charger=self._name, entity=key, reason=reason)
        if not update.changed:
            return update.changed  # the common case: a quiet charger costs one comparison
        self._quiet_until = loop.time() + self._min_interval
        states = self._states
        owed = [states.topic(key) for key in update.changed] if self._leaf_topics else []
        owed.append(states.json_topic)
        await self._publisher.publish_members(states, owed)
        return update.changed

    def _hold(
        self, status: Mapping[str, Any], changed: set[str] | None, serial: str | None
    ) -> None:
        held = self._held
        if held is None:
            self._held = _Held(status, None if changed is None else set(changed), serial)
        else:
            held.status, held.serial = status, serial
            if held.changed is not None:
                if changed is None:
                    held.changed = None
                else:
                    held.changed |= changed
        if self._flushing is None or self._flushing.done():
            self._flushing = asyncio.create_task(self._publish_held(), name=f"held:{self._name}")

    async def _publish_held(self) -> list[str]:
        """The trailing publish: the latest held status once the interval is over."""
        loop = asyncio.get_running_loop()
        # Again while the deadline moves: a publish made meanwhile moved it.
        while (wait := self._quiet_until - loop.time()) > 0:  # noqa: ASYNC110
            await asyncio.sleep(wait)
        try:
            return await self.flush()
        except Exception:  # nobody awaits this task: say it here
            log.exception("publish_failed", charger=self._name)
            return []

    async def flush(self) -> list[str]:
        """Publish what is held now (a command's read-back shows its value at once)."""
        held = self._held
        if held is None:
            return []
        return await self.take(held.status, held.changed, held.serial)

    def stop(self) -> None:
        """Cancel the trailing publish (the bridge stops)."""
        if self._flushing is not None:
            self._flushing.cancel()
