"""A charger's state topics as a live retained family, built from its view when sent.

The MQTT session's store (mqtt/retained.py) keeps no copy of a charger's ~130 state
payloads nor of its JSON state (each would be held per charger for as long as it runs,
and the JSON compressed at every change): it keeps this family, and when a state must
be sent - it changed, a reconnect, Home Assistant's birth - builds it from what the
charger's view says then, the newest.
"""

from __future__ import annotations

import json
from collections.abc import Iterator

from goe2mqtt.catalogue import format_state
from goe2mqtt.charger.view import ChargerView
from goe2mqtt.mqtt.families import FAMILY
from goe2mqtt.mqtt.topics import Topics


def states_key(topics: Topics, charger: str) -> str:
    """The key the MQTT session's store keeps a charger's state topics under."""
    return f"{FAMILY}states/{topics.base}/{charger}"


class StateTopics:
    """One charger's state topics (mqtt/retained.LiveFamily): the leaf topics of what its
    view shows (if ``leaf_topics``), then its JSON state."""

    __slots__ = ("_json", "_leaf", "_prefix", "_view", "key")

    def __init__(
        self, view: ChargerView, topics: Topics, charger: str, *, leaf_topics: bool
    ) -> None:
        self.key = states_key(topics, charger)
        self._view = view
        self._leaf = leaf_topics
        self._prefix = topics.state(charger, "")  # a leaf topic is it and the entity's key
        self._json = topics.json_state(charger)

    def __eq__(self, other: object) -> bool:
        return self is other  # its members change: only itself builds the same

    def __hash__(self) -> int:
        return id(self)

    @property
    def size(self) -> int:
        return (len(self._view.states) if self._leaf else 0) + 1

    def topic(self, key: str) -> str:
        """The leaf topic of an entity's state."""
        return self._prefix + key

    @property
    def json_topic(self) -> str:
        return self._json

    def topics(self) -> Iterator[str]:
        if self._leaf:
            yield from (self._prefix + key for key in tuple(self._view.states))
        yield self._json

    def members(self) -> Iterator[tuple[str, bytes]]:
        # The keys as they are now; each value as it is when its turn comes.
        for topic in self.topics():
            payload = self.member(topic)
            if payload is not None:
                yield topic, payload

    def member(self, topic: str) -> bytes | None:
        states = self._view.states
        if topic == self._json:
            return json.dumps(states, sort_keys=True, ensure_ascii=False, allow_nan=False).encode()
        if not self._leaf or not topic.startswith(self._prefix):
            return None
        key = topic[len(self._prefix) :]
        return format_state(states[key]).encode() if key in states else None
