"""A charger's state topics are a live family in the session's store (issue 32, item 3):
no copy of their payloads is held; each is built from the charger's view when it is
sent, so a reconnect or Home Assistant's birth sends every state topic with the value
the charger has now, and a change that waits for the broker goes out as the newest."""

from __future__ import annotations

import json
from collections.abc import Iterable
from typing import Any

from goe2mqtt.charger.publish import ChargerOutput
from goe2mqtt.mqtt.families import Family, LiveFamily
from goe2mqtt.mqtt.retained import RetainedStore
from goe2mqtt.mqtt.topics import Topics
from tests.unit.test_retained_family import Broker, _refused, drained

TOPICS = Topics("goe2mqtt")
AMP = TOPICS.state("garage", "charging_current")
JSON = TOPICS.json_state("garage")


class StorePublisher:
    """ChargerOutput's publisher over the session's store (what MqttSession does)."""

    def __init__(self) -> None:
        self.store = RetainedStore(_refused)

    async def publish_retained(
        self, topic: str, payload: str | bytes, *, vouches: Iterable[str] = ()
    ) -> None:
        self.store.put(topic, payload.encode() if isinstance(payload, str) else payload, vouches)

    async def publish_family(self, family: Family) -> None:
        self.store.put_family(family)

    async def publish_members(self, family: LiveFamily, topics: Iterable[str]) -> None:
        for topic in topics:
            self.store.put_member(family, topic)


def output(publisher: StorePublisher, *, leaf_topics: bool = True) -> ChargerOutput:
    return ChargerOutput(
        "garage", publisher, topics=TOPICS, discovery_prefix=None, leaf_topics=leaf_topics,
        on_facts=lambda facts: None, min_interval=0.0,
    )  # fmt: skip


def status(amp: int, **more: Any) -> dict[str, Any]:
    return {"amp": amp, "alw": True, "car": 2, "fwv": "56.1", **more}


async def test_no_state_payload_is_held_once_sent() -> None:
    publisher, broker = StorePublisher(), Broker()
    out = output(publisher)
    await out.take(status(10), None, "012345")
    await drained(publisher.store, broker)
    assert broker.last()[AMP] == b"10"
    assert json.loads(broker.last()[JSON])["charging_current"] == 10
    # One family for all the charger's states, not a payload per topic.
    assert [k for k in publisher.store.retained if "garage" in k] == ["#states/goe2mqtt/garage"]
    await out.take(status(11), {"amp"}, "012345")
    await drained(publisher.store, broker)
    assert broker.last()[AMP] == b"11"
    assert [k for k in publisher.store.retained if "garage" in k] == ["#states/goe2mqtt/garage"]
    out.stop()


async def test_after_a_reconnect_every_state_topic_goes_again_with_its_current_value() -> None:
    publisher, broker = StorePublisher(), Broker()
    out = output(publisher)
    await out.take(status(10), None, "012345")
    await drained(publisher.store, broker)
    first = broker.last()
    await out.take(status(12), {"amp"}, "012345")
    await drained(publisher.store, broker)
    broker.got.clear()
    publisher.store.owe_everything()  # a reconnect (or Home Assistant's birth)
    await drained(publisher.store, broker)
    again = broker.last()
    assert set(again) == set(first)  # every state topic, the JSON state too
    assert again[AMP] == b"12"  # as the charger says now, although no copy was kept
    assert json.loads(again[JSON])["charging_current"] == 12
    assert again == {topic: out.view.text(topic.rsplit("/", 1)[1]).encode()
                     for topic in again if topic != JSON} | {JSON: again[JSON]}  # fmt: skip
    out.stop()


async def test_a_change_waiting_for_the_broker_goes_out_as_the_newest_once() -> None:
    publisher, broker = StorePublisher(), Broker()
    out = output(publisher)
    await out.take(status(10), None, "012345")
    await drained(publisher.store, broker)
    broker.got.clear()
    for amp in (11, 12, 13):  # the broker is away: nothing taken meanwhile
        await out.take(status(amp), {"amp"}, "012345")
    barrier = publisher.store.barrier()
    await drained(publisher.store, broker)
    await publisher.store.settled(barrier)
    assert [p for t, p in broker.got if t == AMP] == [b"13"]
    assert [json.loads(p)["charging_current"] for t, p in broker.got if t == JSON] == [13]
    out.stop()


async def test_the_json_state_alone_when_leaf_topics_are_off() -> None:
    publisher, broker = StorePublisher(), Broker()
    out = output(publisher, leaf_topics=False)
    await out.take(status(10), None, "012345")
    await drained(publisher.store, broker)
    publisher.store.owe_everything()
    broker.got.clear()
    await drained(publisher.store, broker)
    assert [t for t, _ in broker.got if "garage" in t] == [JSON]
    out.stop()


async def test_a_cleared_state_topic_is_a_member_again_when_its_entity_returns() -> None:
    publisher, broker = StorePublisher(), Broker()
    out = output(publisher)
    await out.take(status(10), None, "012345")
    await drained(publisher.store, broker)
    await publisher.publish_retained(AMP, b"")  # cleared (the entity went absent)
    await drained(publisher.store, broker)
    assert broker.last()[AMP] == b""
    await out.take(status(14), {"amp"}, "012345")
    await drained(publisher.store, broker)
    assert broker.last()[AMP] == b"14"
    assert AMP not in publisher.store.retained
    broker.got.clear()
    publisher.store.owe_everything()
    await drained(publisher.store, broker)
    assert broker.last()[AMP] == b"14"
    out.stop()


async def test_births_faster_than_a_re_send_hold_back_no_change() -> None:
    """Everything owed again before the last re-send ended (Home Assistant's births in a
    flood, a flapping broker): the re-send goes on where it is, and a change made
    meanwhile goes out within one re-send, however many births follow."""
    publisher = StorePublisher()
    store = publisher.store
    out = output(publisher)
    for n in range(200):
        store.put(f"goe2mqtt/other{n}/availability", b"online")
    await out.take(status(10), None, "012345")  # its states: after the others
    while store._take() is not None:  # all of it sent (acknowledgements do not matter)
        pass
    store.owe_everything()  # a birth
    await out.take(status(11), {"amp"}, "012345")
    whole = store.backlog
    sent: list[str] = []
    for _ in range(3 * whole):  # three re-sends' worth, a birth after every 10 topics
        taken = store._take()
        if taken is not None:
            sent.append(taken[0])
        if len(sent) % 10 == 0:
            store.owe_everything()
        assert len(store._dirty) <= len(store.retained) + len(store._loose)  # each once
    assert AMP in sent[:whole]
    out.stop()


def test_a_re_send_says_when_it_went_out() -> None:
    """What Home Assistant's births are spaced by: the end of the last re-send."""
    store = RetainedStore(_refused)
    for n in range(3):
        store.put(f"goe2mqtt/c{n}/availability", b"online")
    while store._take() is not None:
        pass
    assert store.resent.is_set()  # none asked for
    store.owe_everything()
    assert not store.resent.is_set()
    store.put("goe2mqtt/c1/availability", b"offline")  # a change meanwhile: goes first
    taken = [store._take() for _ in range(2)]
    assert [t[0] for t in taken if t] == ["goe2mqtt/c1/availability", "goe2mqtt/c0/availability"]
    assert not store.resent.is_set()  # c2 is still owed again
    store.owe_everything()  # asked again before c2 went: c2 keeps its place
    assert [t[0] for t in iter(store._take, None)] == [
        "goe2mqtt/c2/availability",
        "goe2mqtt/c0/availability",
        "goe2mqtt/c1/availability",
    ]
    assert store.resent.is_set()


def test_a_change_goes_before_a_re_send_under_way() -> None:
    """A change made while everything is sent again (Home Assistant's birth) waits for
    no more than what is already on its way; a member of a family owed again goes alone,
    and the family after it is still sent whole."""
    publisher = StorePublisher()
    store = publisher.store
    for n in range(500):
        store.put(f"goe2mqtt/other{n}/availability", b"online")
    while store._take() is not None:
        pass
    store.owe_everything()  # a birth
    first = [store._take() for _ in range(10)]  # under way
    store.put("goe2mqtt/other250/availability", b"offline")
    taken = store._take()
    assert taken is not None
    assert taken[:2] == ("goe2mqtt/other250/availability", b"offline")
    rest = [t[0] for t in iter(store._take, None)]
    assert len(first) + 1 + len(rest) == 500  # the change went once, not again in the re-send
    assert store.resent.is_set()
