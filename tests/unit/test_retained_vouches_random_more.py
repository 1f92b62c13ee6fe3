"""The store driven at random as in test_retained_vouches_random, with more of what the
session does: publishes refused for good, a state topic cleared as a topic of its own
and a member again, a state someone else overwrote (owe_again). Whenever the broker
holds the charger's "online" it holds every one of its states; at the end nothing is
owed, no barrier waits, and the broker holds what was last said of the charger's
availability and the newest states."""

from __future__ import annotations

import random

import pytest

from goe2mqtt.charger.state_family import states_key
from goe2mqtt.mqtt.families import Taken
from tests.unit.test_retained_states import AMP, TOPICS, StorePublisher, output, status

ONLINE = TOPICS.availability("garage")


@pytest.mark.parametrize("seed", range(100))
async def test_the_broker_ends_with_the_truth(seed: int) -> None:
    rnd = random.Random(seed)
    publisher = StorePublisher()
    store, out = publisher.store, output(publisher)
    await out.take(status(10), None, "012345")
    for n in range(3):
        store.put(TOPICS.availability(f"other{n}"), b"online")
    key = states_key(TOPICS, "garage")
    family = store.retained[key]
    assert not isinstance(family, bytes)
    states = set(family.topics())
    broker: dict[str, bytes] = {}
    inflight: list[Taken] = []
    said: bytes | None = None

    def deliver(taken: Taken, refused: bool = False) -> None:
        if not refused:
            broker[taken[0]] = taken[1]
        store._delivered(taken[0], taken[2])

    amp = 10
    for step in range(400):
        what = rnd.random()
        if what < 0.3:
            for _ in range(rnd.randint(1, 20)):
                taken = store._take()
                if taken is None:
                    break
                inflight.append(taken)
        elif what < 0.55:
            count = rnd.randint(0, len(inflight))
            for taken in inflight[:count]:
                # Refused for good: never a charger's states or availability (the
                # guarantee is for what the broker takes), only the others'.
                deliver(taken, refused="other" in taken[0] and rnd.random() < 0.3)
                if broker.get(ONLINE) == b"online":
                    missing = {t for t in states if not broker.get(t)}
                    assert not missing, f"step {step}: online without {len(missing)} states"
            del inflight[:count]
        elif what < 0.62:
            lost, inflight = inflight, []
            rnd.shuffle(lost)
            for taken in lost:
                store._undelivered(*taken)
            if rnd.random() < 0.5:
                broker.clear()
            store.owe_everything()
        elif what < 0.72:
            amp += 1
            await out.take(status(amp), {"amp"}, "012345")
        elif what < 0.8:
            online = rnd.random() < 0.6
            await out.availability(online=online)
            said = b"online" if online else b"offline"
        elif what < 0.85:
            store.owe_again(AMP, key)  # someone else wrote there
        elif what < 0.9:
            store.owe_everything()
        else:
            store.owe_again(ONLINE, ONLINE)
    for taken in inflight:
        deliver(taken)
    while (taken := store._take()) is not None:
        deliver(taken)
    assert not store._dirty
    assert store._sending is None
    assert store._order._oldest() is None
    if said is not None:
        assert broker.get(ONLINE) == said
    newest = {topic: family.member(topic) for topic in states}
    assert {t: broker.get(t) for t, p in newest.items() if p is not None} == {
        t: p for t, p in newest.items() if p is not None
    }
    out.stop()
