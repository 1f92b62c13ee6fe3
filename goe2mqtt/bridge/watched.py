"""The retained topics of ours the session watches for what others write there.

A broker user who publishes on a charger's state topic, its availability or its session
(retained or not) leaves a wrong value with every subscriber until the charger's next
change of it, which for a setting may be never. The session (MQTT 5) subscribes each
owned charger's ``{base}/{name}/+`` with no_local, so that only others' writes arrive,
and answers them with our value (mqtt/overwrites.py). One filter per charger, not
``{base}/+/+``: a shard must not receive what the other shards publish.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable

from goe2mqtt.charger.state_family import states_key
from goe2mqtt.mqtt.session import Subscription
from goe2mqtt.mqtt.topics import SESSION_LEAF, Topics

# A charger's topics of its own (the rest are members of its live state family).
OWN_LEAVES = frozenset({"availability", SESSION_LEAF})


def watched_subscriptions(topics: Topics, chargers: Iterable[str]) -> list[Subscription]:
    return [Subscription(topics.bridge_info, qos=0, ours=True)] + [
        Subscription(f"{topics.base}/{name}/+", qos=0, ours=True) for name in chargers
    ]


def owner(topics: Topics, chargers: Iterable[str]) -> Callable[[str], str | None]:
    """For a topic the watched subscriptions deliver, the key the session's store keeps
    it under: the charger's state family, or the topic itself."""
    names = frozenset(chargers)
    prefix = f"{topics.base}/"
    info = topics.bridge_info

    def key(topic: str) -> str | None:
        if topic == info:
            return topic
        if not topic.startswith(prefix):
            return None
        name, slash, leaf = topic[len(prefix) :].partition("/")
        if not slash or "/" in leaf or name not in names:
            return None
        return topic if leaf in OWN_LEAVES else states_key(topics, name)

    return key
