"""What was taken for sending and did not arrive goes back where it was: ahead of what
was owed after it (a charger's "online" behind its states), in the order it was taken,
whatever order the failures come in (the sender cancels its publishes as a set)."""

from __future__ import annotations

import asyncio

from goe2mqtt.charger.state_family import states_key
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


async def test_a_charger_back_online_during_a_resend_sends_its_states_before_its_online() -> None:
    """Everything owed again (a broker that lost its retained messages, a reconnect)
    goes after every change. A charger back online meanwhile: its "online" (a change)
    went ahead of its own states still waiting in the re-send, and a subscriber that saw
    it found them missing on such a broker. Only what changed went first."""
    publisher, broker = StorePublisher(), Broker()
    store, out = publisher.store, output(publisher)
    await out.take(status(10), None, "012345")
    await out.availability(online=True)
    await out.availability(online=False)  # its polls failed
    for n in range(3):  # other chargers: the re-send is under way when it comes back
        store.put(f"goe2mqtt/other{n}/availability", b"online")
    await drained(store, broker)
    states = {t for t, _ in broker.got if t.startswith(TOPICS.state("garage", "")) and t != ONLINE}
    broker.got.clear()
    store.owe_everything()  # the next connection
    await out.take(status(11), {"amp"}, "012345")  # back, as Charger._accept does it
    await out.availability(online=True)
    await drained(store, broker)
    sent = [topic for topic, _ in broker.got]
    before = set(sent[: sent.index(ONLINE)])
    assert states <= before, f"online before {sorted(states - before)[:3]} ..."
    assert sent[-3:] == [f"goe2mqtt/other{n}/availability" for n in range(3)]  # still after
    out.stop()


async def test_the_states_sent_ahead_of_their_online_in_a_resend_are_paced_as_bulk() -> None:
    """A charger's states owed only by the re-send are bulk (mqtt/pace.py); sent ahead of
    its "online" they still are: a fleet back online together is no unpaced burst."""
    publisher = StorePublisher()
    store, out = publisher.store, output(publisher)
    await out.take(status(10), None, "012345")
    await out.availability(online=False)
    await drained(store, Broker())
    store.owe_everything()
    await out.availability(online=True)
    key = states_key(TOPICS, "garage")
    assert store._dirty.peek() == (key, True)  # a change now, ahead of the re-send
    family = store.retained[key]
    assert not isinstance(family, bytes)
    assert store._bulk() == family.size
    await drained(store, Broker())
    await out.take(status(11), {"amp"}, "012345")  # a change of its own later: unpaced
    assert store._bulk() == 0
    out.stop()
