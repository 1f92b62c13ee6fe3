"""A charger's "online" vouches for its states (mqtt/vouches.py): whatever the store
still owes of them goes before it, also when a re-send (a reconnect, Home Assistant's
birth) owed them and the "online" came meanwhile as a change; and nothing else waits for
that re-send. A broker that lost its retained messages held "online" without them."""

from __future__ import annotations

import asyncio

from goe2mqtt.charger.publish import ChargerOutput
from goe2mqtt.charger.state_family import states_key
from goe2mqtt.mqtt.owed import Owed
from goe2mqtt.mqtt.pace import Pace
from goe2mqtt.mqtt.retained import RetainedStore
from tests.unit.test_retained_family import Broker, _refused, drained
from tests.unit.test_retained_states import AMP, TOPICS, StorePublisher, output, status

ONLINE = TOPICS.availability("garage")
PLAIN = "goe2mqtt/bridge/plain"  # a change of nothing a charger's online vouches for


def states(store: RetainedStore, name: str = "garage") -> list[str]:
    family = store.retained[states_key(TOPICS, name)]
    assert not isinstance(family, bytes)
    return list(family.topics())


def online_after_its_states(broker: Broker, store: RetainedStore) -> None:
    sent = [topic for topic, _ in broker.got]
    before = set(sent[: sent.index(ONLINE)])
    missing = [topic for topic in states(store) if topic not in before]
    assert not missing, f"online before {len(missing)} of its states: {missing[:3]} ..."


async def held_sender(store: RetainedStore) -> tuple[asyncio.Task[None], Broker]:
    """A sender whose window is full of publishes the broker does not answer."""
    held = Broker(hold=True)
    sender = asyncio.create_task(store.send(held, 5.0))  # type: ignore[arg-type]
    while held.inflight < 16:  # noqa: ASYNC110 - the sender's state
        await asyncio.sleep(0)
    return sender, held


async def connection_lost(sender: asyncio.Task[None], held: Broker) -> None:
    sender.cancel()
    await asyncio.gather(sender, return_exceptions=True)
    while held.inflight:  # noqa: ASYNC110 - the publishes' ends
        await asyncio.sleep(0)


def other_charger(publisher: StorePublisher, name: str) -> ChargerOutput:
    return ChargerOutput(
        name, publisher, topics=TOPICS, discovery_prefix=None, leaf_topics=True,
        on_facts=lambda facts: None, min_interval=0.0,
    )  # fmt: skip


async def online_then_offline(publisher: StorePublisher) -> ChargerOutput:
    """A charger whose states (more than a window of them) the broker has, now offline."""
    out = output(publisher)
    await out.take(status(10), None, "012345")
    await out.availability(online=True)
    await out.availability(online=False)  # its polls failed
    await drained(publisher.store, Broker())
    return out


async def test_back_online_in_a_resend_its_states_go_first_and_nothing_waits_for_others() -> None:
    # Bulk never goes: what is only sent again (the other chargers' states) stays owed.
    publisher, broker = StorePublisher(), Broker()
    store = publisher.store = RetainedStore(_refused, pace=Pace(1.0, burst=0, clock=lambda: 0))
    others = [other_charger(publisher, f"other{n}") for n in range(3)]
    for other in others:
        await other.take(status(6), None, "0")
        await other.availability(online=True)
    out = await online_then_offline(publisher)
    store.owe_everything()  # the next connection: the broker lost its retained messages
    await out.take(status(11), {"amp"}, "012345")  # back, as Charger._accept does it
    await out.availability(online=True)
    await out.take(status(12), {"amp"}, "012345")  # a poll's change after it
    store.put(PLAIN, b"1")  # a change of something else, last
    sender = asyncio.create_task(store.send(broker, 5.0))  # type: ignore[arg-type]

    async def plain_sent() -> None:
        while PLAIN not in broker.last() or broker.inflight:  # noqa: ASYNC110 - the sender's
            await asyncio.sleep(0)

    await asyncio.wait_for(plain_sent(), 5)
    sender.cancel()
    await asyncio.gather(sender, return_exceptions=True)
    online_after_its_states(broker, store)
    assert broker.last()[AMP] == b"12"
    # Only its own states went ahead: none of the others' (still owed, at the bulk pace).
    assert not {t for t, _ in broker.got if "/other" in t}
    for other in (*others, out):
        other.stop()


async def test_a_poll_does_not_move_the_first_states_behind_the_online() -> None:
    """A family owed whole as a change keeps its place when a member changes (built when
    taken, the newest then): moved last, it went behind its "online"; and the barrier
    of that change is passed once it is out."""
    publisher, broker = StorePublisher(), Broker()
    store, out = publisher.store, output(publisher)
    await out.take(status(10), None, "012345")  # the first states: a change
    await out.availability(online=True)
    await out.take(status(11), {"amp"}, "012345")
    barrier = store.barrier()
    await drained(store, broker)
    await asyncio.wait_for(store.settled(barrier), 5)
    online_after_its_states(broker, store)
    assert [payload for topic, payload in broker.got if topic == AMP] == [b"11"]
    out.stop()


async def test_states_lost_mid_resend_go_again_before_the_online_stored_meanwhile() -> None:
    """The re-send had taken the states when the charger came back: the connection lost
    under them gave them back to the re-send, behind the "online", a change."""
    publisher = StorePublisher()
    store = publisher.store
    out = await online_then_offline(publisher)
    store.owe_everything()
    sender, held = await held_sender(store)  # its states on their way, unanswered
    await out.availability(online=True)
    await connection_lost(sender, held)
    store.owe_everything()  # the next connection
    broker = Broker()
    await drained(store, broker)
    online_after_its_states(broker, store)
    out.stop()


async def test_states_sent_ahead_of_their_online_and_lost_go_before_it_again() -> None:
    publisher = StorePublisher()
    store = publisher.store
    out = await online_then_offline(publisher)
    store.owe_everything()
    await out.availability(online=True)
    sender, held = await held_sender(store)  # the states taken ahead of it
    assert store.owes(ONLINE, ONLINE)
    await connection_lost(sender, held)
    store.owe_everything()
    broker = Broker()
    await drained(store, broker)
    online_after_its_states(broker, store)
    sent = [topic for topic, _ in broker.got]
    assert len(sent) == len(set(sent))  # each once
    out.stop()


async def test_a_birth_while_the_states_are_on_their_way_does_not_put_them_behind() -> None:
    """A re-send begun while the states went out owed them again last, behind their
    "online" owed before: the connection lost under them, they stayed there (owed
    already), and the "online" went first to a broker that had lost them."""
    publisher = StorePublisher()
    store, out = publisher.store, output(publisher)
    await out.take(status(10), None, "012345")
    await out.availability(online=True)
    await drained(store, Broker())
    store.owe_everything()  # a reconnect: the states, then the online
    sender, held = await held_sender(store)  # the states on their way
    store.owe_everything()  # Home Assistant's birth: the states again, last
    await connection_lost(sender, held)
    store.owe_everything()
    broker = Broker()
    await drained(store, broker)
    online_after_its_states(broker, store)
    out.stop()


async def test_offline_vouches_for_nothing() -> None:
    """Ahead of stale states, "offline" only says not to trust them: it goes first."""
    publisher, broker = StorePublisher(), Broker()
    store, out = publisher.store, output(publisher)
    await out.take(status(10), None, "012345")
    await out.availability(online=True)
    await drained(store, broker)
    broker.got.clear()
    store.owe_everything()
    await out.availability(online=False)
    await drained(store, broker)
    assert broker.got[0] == (ONLINE, b"offline")
    out.stop()


async def test_a_state_cleared_then_back_while_the_first_states_wait_ends_with_its_value() -> None:
    """The first states owed as a change keep their place: a clear of one of them owed
    after it, then the entity back, sent the clear last (a member again, it is built)."""
    publisher, broker = StorePublisher(), Broker()
    store, out = publisher.store, output(publisher)
    await out.take(status(10), None, "012345")
    await publisher.publish_retained(AMP, b"")  # the entity went absent
    await out.take(status(11), {"amp"}, "012345")  # and came back
    await drained(store, broker)
    assert broker.last()[AMP] == b"11"
    out.stop()


def test_a_change_changed_again_keeps_its_place_and_its_first_change() -> None:
    owed = Owed()
    owed.change("#states", None)  # owed with no change of its own (given back)
    owed.change("online", 2)
    owed.changed_again("#states", 3)
    assert list(owed) == ["#states", "online"]
    assert owed.since("#states") == 3  # the first change not yet taken: settled() waits
    owed.changed_again("#states", 4)
    assert owed.since("#states") == 3
    owed.again("#configs")
    owed.pull("#configs")  # out of its turn: what vouches for it is next
    assert not owed.resending
    assert [owed.take(), owed.take(), owed.take()] == ["#states", "online", None]
