"""What was taken for sending and did not arrive goes back where it was: ahead of what
was owed after it (a charger's "online" behind its states), in the order it was taken,
whatever order the failures come in (the sender cancels its publishes as a set)."""

from __future__ import annotations

import asyncio

from goe2mqtt.mqtt.retained import RetainedStore
from tests.unit.test_retained_family import Broker, _refused, configs, drained
from tests.unit.test_retained_states import TOPICS, StorePublisher, output, status

ONLINE = TOPICS.availability("garage")


async def test_states_lost_on_the_way_go_again_before_the_online_owed_after_them() -> None:
    publisher = StorePublisher()
    store, out = publisher.store, output(publisher)
    await out.take(status(10), None, "012345")  # the first states: more than the window
    store.put(ONLINE, b"online")
    held = Broker(hold=True)
    sender = asyncio.create_task(store.send(held, 5.0))  # type: ignore[arg-type]
    while held.inflight < 16:  # noqa: ASYNC110 - the sender's state
        await asyncio.sleep(0)
    assert store.owes(ONLINE, ONLINE)  # not taken: the window is full of states
    sender.cancel()  # the connection is lost
    await asyncio.gather(sender, return_exceptions=True)
    while held.inflight:  # noqa: ASYNC110 - the publishes' ends
        await asyncio.sleep(0)
    store.owe_everything()  # the next connection
    broker = Broker()
    await drained(store, broker)
    sent = [topic for topic, _ in broker.got]
    assert sent[-1] == ONLINE
    assert len(sent) == len(set(sent))  # each once
    out.stop()


async def test_what_did_not_arrive_goes_again_in_the_order_it_was_taken() -> None:
    store = RetainedStore(_refused)
    family = configs()
    for topic in ("a", "b"):
        store.put(topic, topic.encode())
    store.put_family(family)
    store.put("c", b"c")
    taken = [store._take() for _ in range(2 + family.size + 1)]
    assert [item[0] for item in taken if item is not None] == ["a", "b", *family.topics(), "c"]
    store.put("d", b"d")  # owed after they were taken
    for item in reversed(taken):  # failing last first
        assert item is not None
        store._undelivered(*item)
    broker = Broker()
    await drained(store, broker)
    assert [topic for topic, _ in broker.got] == ["a", "b", *family.topics(), "c", "d"]
