"""Bulk publishes (a family sent whole, everything sent again) go at mqtt.bulk_rate after
a first burst; a change of one topic never waits for them (mqtt/pace.py).

The pace's clock is the test's: tokens come only when the test moves it, so what is
held stays held however slow the machine is."""

from __future__ import annotations

import asyncio
import random
from collections.abc import Iterator
from typing import Any

import pytest

from goe2mqtt.mqtt.families import FAMILY
from goe2mqtt.mqtt.owed import Owed
from goe2mqtt.mqtt.pace import Pace
from goe2mqtt.mqtt.retained import RetainedStore

from ..conftest import WAIT, until
from .test_retained_family import Broker, Configs, _refused, configs


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


class CountedPace(Pace):
    """Counts the times a bulk publish was held: the sender looked and waited."""

    held = 0

    def delay(self) -> float:
        wait = super().delay()
        self.held += wait > 0.0
        return wait


def test_a_burst_goes_at_once_then_the_rate_holds() -> None:
    clock = Clock()
    pace = Pace(100.0, burst=3, clock=clock)
    for _ in range(3):
        assert pace.delay() == 0.0
        pace.spend(1)
    assert pace.delay() == pytest.approx(0.01)
    clock.now += 0.01
    assert pace.delay() == 0.0
    pace.spend(1)
    assert pace.delay() > 0.0


def test_a_quiet_while_refills_no_more_than_the_burst() -> None:
    clock = Clock()
    pace = Pace(100.0, burst=3, clock=clock)
    pace.spend(3)
    clock.now += 3600.0
    for _ in range(3):
        assert pace.delay() == 0.0
        pace.spend(1)
    assert pace.delay() > 0.0


def test_a_family_goes_whole_on_one_token_and_the_next_waits_for_its_size() -> None:
    clock = Clock()
    pace = Pace(100.0, burst=3, clock=clock)
    pace.spend(2)
    assert pace.delay() == 0.0  # one token left: a family of 130 goes whole
    pace.spend(130)
    assert pace.delay() == pytest.approx(1.30)  # back to one token: 130 at 100 a second


def test_a_wait_brings_several_tokens() -> None:
    # Woken for each token, the sender spent ~70 us of the loop on every topic sent again.
    clock = Clock()
    pace = Pace(2000.0, burst=500, clock=clock)
    pace.spend(500)
    wait = pace.delay()
    assert wait * 2000.0 >= 10.0  # not one token's 0.5 ms
    clock.now += wait
    for _ in range(10):
        assert pace.delay() == 0.0
        pace.spend(1)


def test_rate_zero_never_holds() -> None:
    pace = Pace(0.0, burst=1, clock=Clock())
    pace.spend(1_000_000)
    assert pace.delay() == 0.0


async def test_changes_go_unpaced_a_re_send_at_the_rate_and_a_change_passes_it() -> None:
    clock = Clock()
    pace = CountedPace(1000.0, burst=2, clock=clock)
    store, broker = RetainedStore(_refused, pace=pace), Broker()
    topics = [f"t/{n}" for n in range(5)]
    for topic in topics:
        store.put(topic, b"1")
    sender = asyncio.create_task(store.send(broker, 5.0))  # type: ignore[arg-type]
    try:
        # Five changes, a burst of two: changes of a topic never wait.
        await until(lambda: len(broker.got) == 5, "the changes, unpaced")
        assert pace.held == 0
        store.owe_everything()  # Home Assistant's birth
        await until(lambda: pace.held >= 3, "the re-send held after its burst")
        assert broker.got[5:] == [("t/0", b"1"), ("t/1", b"1")]
        store.put("t/4", b"2")  # a change while the re-send is held: it goes at once
        await until(lambda: len(broker.got) == 8, "the change")
        assert broker.got[7] == ("t/4", b"2")
        clock.now += 0.002  # two tokens: two more of the re-send
        await until(lambda: len(broker.got) == 10, "two more of the re-send")
        assert broker.got[8:] == [("t/2", b"1"), ("t/3", b"1")]
        assert store.backlog == 0  # t/4's change covered its place in the re-send
    finally:
        sender.cancel()
        await asyncio.gather(sender, return_exceptions=True)


async def test_a_new_family_is_bulk_and_goes_whole_once_a_token_is_there() -> None:
    clock = Clock()
    pace = CountedPace(1000.0, burst=1, clock=clock)
    store, broker = RetainedStore(_refused, pace=pace), Broker()
    store.put_family(configs("garage"))  # three members
    store.put_family(configs("carport"))
    sender = asyncio.create_task(store.send(broker, 5.0))  # type: ignore[arg-type]
    try:
        await until(lambda: pace.held >= 3, "the second family held")
        assert [topic for topic, _ in broker.got] == [f"ha/garage/{k}/config" for k in "abc"]
        clock.now += 0.002  # the level is -2: one token needs three ms
        await until(lambda: pace.held >= 6, "still held")
        assert len(broker.got) == 3
        clock.now += 0.001
        await until(lambda: len(broker.got) == 6, "the second family, whole")
    finally:
        sender.cancel()
        await asyncio.gather(sender, return_exceptions=True)


class Live:
    """A live family (a charger's states): each member built from what it says now; a
    member it no longer has builds as None."""

    def __init__(self, name: str, topics: list[str]) -> None:
        self.key = f"{FAMILY}{name}"
        self.values = {topic: b"1" for topic in topics}

    @property
    def size(self) -> int:
        return len(self.values)

    def topics(self) -> Iterator[str]:
        return iter(list(self.values))

    def members(self) -> Iterator[tuple[str, bytes]]:
        return iter(list(self.values.items()))

    def member(self, topic: str) -> bytes | None:
        return self.values.get(topic)


async def held_or_drained(store: RetainedStore, pace: CountedPace, held: int) -> None:
    """Until the sender waited ``held`` times for tokens, or had nothing left to send."""
    await until(lambda: pace.held >= held or not store._owes(), "the sender held or done")


async def test_a_family_after_one_with_no_members_waits_for_its_tokens() -> None:
    # _take() passes over a family with no members (nothing to send, and no token paid
    # for it): the family after it is bulk too and must be paid for, not taken with it.
    clock = Clock()
    pace = CountedPace(1000.0, burst=1, clock=clock)
    store, broker = RetainedStore(_refused, pace=pace), Broker()
    store.put_family(configs("garage"))  # three members: the level goes to -2
    store.put_family(Configs("empty", {}))
    store.put_family(configs("carport"))
    sender = asyncio.create_task(store.send(broker, 5.0))  # type: ignore[arg-type]
    try:
        await held_or_drained(store, pace, 3)
        assert [topic for topic, _ in broker.got] == [f"ha/garage/{k}/config" for k in "abc"]
        clock.now += 0.003  # a token: the carport's configs, whole
        await until(lambda: len(broker.got) == 6, "the second family")
    finally:
        sender.cancel()
        await asyncio.gather(sender, return_exceptions=True)


async def test_a_family_after_a_member_that_vanished_waits_for_its_tokens() -> None:
    # A live family's member owed as a change, gone from the family when taken: passed
    # over (nothing to send); the family owed whole after it must still be paid for.
    clock = Clock()
    pace = CountedPace(1000.0, burst=1, clock=clock)
    store, broker = RetainedStore(_refused, pace=pace), Broker()
    store.put_family(configs("carport"))  # three members: the level goes to -2
    states = Live("states", ["s/a", "s/b"])
    store.put_family(states)  # first states: a change, no tokens
    sender = asyncio.create_task(store.send(broker, 5.0))  # type: ignore[arg-type]
    try:
        await until(lambda: len(broker.got) == 5 and not store._owes(), "configs and states")
        store.put_member(states, "s/b")  # a change of one value: owed as a loose member
        del states.values["s/b"]  # gone before it is taken (the charger no longer has it)
        store.put_family(configs("garage"))  # new: owed whole, bulk
        await held_or_drained(store, pace, 3)
        assert len(broker.got) == 5  # nothing of the configs before their token
        clock.now += 0.003
        await until(lambda: len(broker.got) == 8, "the configs, whole")
    finally:
        sender.cancel()
        await asyncio.gather(sender, return_exceptions=True)


async def test_first_states_are_a_change_and_a_re_send_of_them_is_bulk() -> None:
    # A fleet's first states held every command's result (it waits for the states
    # before it) for minutes; sent again (a birth, a reconnect) they are bulk like all.
    clock = Clock()
    pace = CountedPace(1000.0, burst=1, clock=clock)
    store, broker = RetainedStore(_refused, pace=pace), Broker()
    store.put_family(configs("garage"))  # three members: the level goes to -2
    store.put_family(Live("states", ["s/a", "s/b"]))
    sender = asyncio.create_task(store.send(broker, 5.0))  # type: ignore[arg-type]
    try:
        await until(lambda: len(broker.got) == 5, "the configs, then the states unpaced")
        assert pace.held == 0
        clock.now += 0.003  # one token again
        store.owe_everything()
        await until(lambda: len(broker.got) == 8, "the configs again, whole")
        await held_or_drained(store, pace, 3)
        assert len(broker.got) == 8  # the states again wait for their tokens
        clock.now += 0.003
        await until(lambda: len(broker.got) == 10, "the states again")
    finally:
        sender.cancel()
        await asyncio.gather(sender, return_exceptions=True)


async def test_a_clean_stop_sends_what_is_owed_unpaced() -> None:
    # The goodbye (MqttSession._say_goodbye) stores each charger's offline, then flushes
    # what is owed for a few seconds before the bridge's offline. At start-up that is
    # bulk first (the families, owed as changes before the offline): held for tokens, the
    # chargers' offline stayed unsaid, "online" retained after the bridge stopped.
    clock = Clock()
    pace = CountedPace(1000.0, burst=1, clock=clock)
    store, broker = RetainedStore(_refused, pace=pace), Broker()
    store.put_family(configs("garage"))
    store.put_family(configs("carport"))
    store.put("garage/availability", b"online")
    sender = asyncio.create_task(store.send(broker, 5.0))  # type: ignore[arg-type]
    try:
        await held_or_drained(store, pace, 1)
        assert len(broker.got) == 3  # the carport's configs wait for a token
        store.store("garage/availability", b"offline")  # the goodbye's
        await store.flush(sender, within=WAIT)  # the clock stands still
        assert broker.last()["garage/availability"] == b"offline"
        assert len(broker.got) == 7
    finally:
        sender.cancel()
        await asyncio.gather(sender, return_exceptions=True)


class Walked(dict[str, Any]):
    """One of Owed's queues, counting the walks from its start: a dict finds its first
    entry past every one deleted from its front, so draining 100 000 names this way
    costs seconds of the loop (quadratic, measured: 3.0 s; 6.3 s with a peek each)."""

    walks = 0

    def __iter__(self) -> Iterator[str]:
        Walked.walks += 1
        return super().__iter__()


def test_take_after_peek_walks_no_queue_again() -> None:
    # The sender peeks (what does the next take cost?) before every take: the walk must
    # not be made twice, nor again when a change is added behind a head it already knows
    # (the sender woken while it waits for tokens).
    owed = Owed()
    owed._changes, owed._again = Walked(), Walked()
    for n in range(3):
        owed.again(f"again/{n}")
        owed.change(f"change/{n}", n + 1)
    while (head := owed.peek()) is not None:
        walks = Walked.walks
        if head == ("change/2", True):
            owed.change("change/late", None)  # behind it: the head stays, known
            assert owed.peek() == head
        assert owed.take() == head[0]
        assert Walked.walks == walks


def test_peek_is_what_take_returns_whatever_came_between() -> None:
    # The walks saved: the head peek() found is kept only while nothing owed since may
    # come before it. Checked against the plain queues on random owing and taking.
    rng = random.Random(7)
    owed = Owed()
    changes: dict[str, int | None] = {}
    again: dict[str, None] = {}
    names = [f"t/{n}" for n in range(6)]
    for step in range(20_000):
        name = rng.choice(names)
        action = rng.randrange(4)
        if action == 0:
            first = changes.pop(name, None)
            again.pop(name, None)
            changes[name] = first if first is not None else step
            owed.change(name, step)
        elif action == 1:
            added = name not in changes and name not in again
            if added:
                again[name] = None
            assert owed.again(name) is added
        elif action == 2:
            expected = next(iter(changes), None) or next(iter(again), None)
            assert owed.take() == expected
            if expected in changes:
                del changes[expected]
            elif expected is not None:
                del again[expected]
        head = next(((name, True) for name in changes), None) or next(
            ((name, False) for name in again), None
        )
        assert owed.peek() == head
        assert list(owed) == [*changes, *again]
