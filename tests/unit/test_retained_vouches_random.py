"""The store driven at random (seeded): takes, acknowledgements in the order taken,
connections lost with what was on its way (given back in any order), a broker that lost
its retained messages, polls, online and offline, births. Whenever the broker holds the
charger's "online", it holds every one of its states (mqtt/vouches.py); and at the end,
all sent, no barrier waits and the broker holds the newest states."""

from __future__ import annotations

import random

import pytest

from goe2mqtt.charger.state_family import states_key
from goe2mqtt.mqtt.families import Taken
from tests.unit.test_retained_states import TOPICS, StorePublisher, output, status

ONLINE = TOPICS.availability("garage")


@pytest.mark.parametrize("seed", range(100))
async def test_the_broker_never_holds_online_without_the_states(seed: int) -> None:
    rnd = random.Random(seed)
    publisher = StorePublisher()
    store, out = publisher.store, output(publisher)
    await out.take(status(10), None, "012345")
    for n in range(3):  # other chargers, in the re-sends too
        store.put(TOPICS.availability(f"other{n}"), b"online")
    family = store.retained[states_key(TOPICS, "garage")]
    assert not isinstance(family, bytes)
    states = set(family.topics())
    broker: dict[str, bytes] = {}
    inflight: list[Taken] = []

    def deliver(taken: Taken) -> None:
        broker[taken[0]] = taken[1]
        store._delivered(taken[0], taken[2])

    amp = 10
    for step in range(400):
        what = rnd.random()
        if what < 0.35:  # the sender takes some
            for _ in range(rnd.randint(1, 20)):
                taken = store._take()
                if taken is None:
                    break
                inflight.append(taken)
        elif what < 0.6:  # the broker takes some, in the order they were sent
            count = rnd.randint(0, len(inflight))
            for taken in inflight[:count]:
                deliver(taken)
                if broker.get(ONLINE) == b"online":
                    missing = states - set(broker)
                    assert not missing, f"step {step}: online without {len(missing)} states"
            del inflight[:count]
        elif what < 0.7:  # the connection is lost: what was on its way is given back
            lost, inflight = inflight, []
            rnd.shuffle(lost)
            for taken in lost:
                store._undelivered(*taken)
            if rnd.random() < 0.5:
                broker.clear()  # a broker that lost its retained messages
            store.owe_everything()
        elif what < 0.8:
            amp += 1
            await out.take(status(amp), {"amp"}, "012345")
        elif what < 0.9:
            await out.availability(online=rnd.random() < 0.6)
        else:
            store.owe_everything()  # Home Assistant's birth
    for taken in inflight:
        deliver(taken)
    while (taken := store._take()) is not None:
        deliver(taken)
    assert store._order._oldest() is None  # settled() waits for nothing
    newest = {topic: family.member(topic) for topic in states}
    assert {t: broker.get(t) for t, p in newest.items() if p is not None} == {
        t: p for t, p in newest.items() if p is not None
    }
    out.stop()
