"""Retained messages kept in memory, as the MQTT session's store would send them: for
tests of one Charger without MQTT, and for benchmarks that time what comes before MQTT."""

from __future__ import annotations

from collections.abc import Iterable

from goe2mqtt.mqtt.families import Family, LiveFamily


class RecordingPublisher:
    """Retained messages kept in memory: the last payload per topic."""

    def __init__(self) -> None:
        self.retained: dict[str, bytes] = {}

    async def publish_retained(
        self, topic: str, payload: str | bytes, *, vouches: Iterable[str] = ()
    ) -> None:
        self.retained[topic] = payload.encode() if isinstance(payload, str) else payload

    async def publish_family(self, family: Family) -> None:
        """Every member, built now (the session's store sends only what changed)."""
        for topic, payload in family.members():
            await self.publish_retained(topic, payload)

    async def publish_members(self, family: LiveFamily, topics: Iterable[str]) -> None:
        """Each member built now (the session's store builds it when it sends it)."""
        for topic in topics:
            payload = family.member(topic)
            if payload is not None:
                await self.publish_retained(topic, payload)
