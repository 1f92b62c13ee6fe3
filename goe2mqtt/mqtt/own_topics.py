"""The session's own topics that others may write: its availability, the watched ones.

What someone else publishes there is answered with our value (mqtt/overwrites.py says
when): the bridge's availability with "online" while connected, a watched topic (MQTT 5,
subscribed with no_local: only others' writes arrive) with what the store holds for it,
sent again after every change (mqtt/owed.py), so an answer never holds back a change
or the command result that reports it. Knows MQTT and nothing of go-e.
"""

from __future__ import annotations

import asyncio
import itertools
from collections.abc import Callable, Sequence

import aiomqtt
from paho.mqtt.subscribeoptions import SubscribeOptions

from goe2mqtt.mqtt.client import Subscription
from goe2mqtt.mqtt.overwrites import Overwrites
from goe2mqtt.mqtt.retained import RetainedStore
from goe2mqtt.mqtt.topics import ONLINE

SUBSCRIBED_TOGETHER = 500  # watched filters in one SUBSCRIBE (a charger's each, at 10 000)

# For a topic the watched subscriptions deliver: the key the store keeps it under (the
# live family it is a member of, or the topic itself); None: not ours.
Owner = Callable[[str], "str | None"]


class OwnTopics:
    def __init__(
        self,
        store: RetainedStore,
        availability_topic: str,
        subscriptions: Sequence[Subscription],
        owner: Owner | None,
    ) -> None:
        self._store = store
        self._availability_topic = availability_topic
        self._watched = [sub for sub in subscriptions if sub.ours]
        self._owner = owner
        self.availability = Overwrites("availability", spaced=False)
        self.retained = Overwrites("retained", spaced=True)
        self.answering: set[str] = set()  # answers waiting for their time
        self.live = False  # connected and not stopping: answers are wanted

    def message(self, topic: str, payload: bytes) -> bool:
        """Whether an inbound message is the session's own business (then it is done)."""
        if topic == self._availability_topic:
            self.availability_seen(payload)
            return True
        key = None if self._owner is None else self._owner(topic)
        if key is None:
            return False
        self.written(topic, key, bytes(payload))
        return True

    def availability_seen(self, payload: bytes) -> None:
        """Someone else wrote our availability (a demo, a stray test, a copied config):
        while we are connected we are online, so say it again (each time)."""
        if payload == ONLINE.encode() or not self.live:
            return
        self.availability.answer_in(self._availability_topic, payload)
        self._store.store(self._availability_topic, ONLINE.encode())

    def written(self, topic: str, key: str, payload: bytes) -> None:
        """Someone else wrote a watched topic of ours: our value goes out again, unless
        it is the same or already on its way."""
        store = self._store
        if topic in self.answering or store.owes(topic, key) or not self.live:
            return  # what is owed answers this write too
        if self.retained.left(topic):
            self.retained.answer_in(topic, payload)  # counted, not built nor compared
            return
        ours = store.ours(topic, key)
        if ours is None or ours == payload:
            return  # not a topic we hold (any more), or what we say there anyway
        delay = self.retained.answer_in(topic, payload)
        if delay is None:
            return
        if not delay:
            store.owe_again(topic, key)
            return
        self.answering.add(topic)

        def answer() -> None:
            self.answering.discard(topic)
            store.owe_again(topic, key)

        asyncio.get_running_loop().call_later(delay, answer)

    async def watch(self, client: aiomqtt.Client) -> None:
        """Subscribe the watched topics (MQTT 5), SUBSCRIBED_TOGETHER at a time: what we
        publish there does not come back (no_local), nor what is retained there."""
        watched = iter(self._watched)
        while batch := list(itertools.islice(watched, SUBSCRIBED_TOGETHER)):
            await client.subscribe(
                [
                    (sub.topic, SubscribeOptions(qos=sub.qos, noLocal=True, retainHandling=2))
                    for sub in batch
                ]
            )
