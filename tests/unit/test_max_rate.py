"""Every retained publish goes at mqtt.max_rate at most, after a first burst: changes too
(mqtt/pace.py's MAX_RATE). A fleet's first states, or every charger back at once after an
outage, are changes no bulk pace spaces; sent faster than a subscriber reads, the broker
dropped what passed its queue for that subscriber.

The ceiling's clock is the test's: tokens come only when the test moves it."""

from __future__ import annotations

import asyncio

from goe2mqtt.mqtt.pace import BULK_BURST
from goe2mqtt.mqtt.retained import RetainedStore

from ..conftest import WAIT, until
from .test_bulk_pace import Clock, CountedPace, Live, held_or_drained
from .test_retained_family import Broker, _refused, configs


async def test_changes_go_at_the_ceiling_after_its_burst() -> None:
    clock = Clock()
    ceiling = CountedPace(1000.0, burst=3, clock=clock)
    store, broker = RetainedStore(_refused, ceiling=ceiling), Broker()
    for n in range(10):
        store.put(f"t/{n}", b"1")
    sender = asyncio.create_task(store.send(broker, 5.0))  # type: ignore[arg-type]
    try:
        await held_or_drained(store, ceiling, 1)
        assert [topic for topic, _ in broker.got] == ["t/0", "t/1", "t/2"]
        clock.now += 0.002  # two tokens
        await until(lambda: len(broker.got) == 5, "two more changes")
        await held_or_drained(store, ceiling, ceiling.held + 1)
        assert len(broker.got) == 5
        clock.now += 1.0  # tokens enough (no more than the burst)
        await until(lambda: len(broker.got) == 8, "a burst's worth")
        clock.now += 1.0
        await until(lambda: not store._owes(), "the rest")
        assert [topic for topic, _ in broker.got] == [f"t/{n}" for n in range(10)]
    finally:
        sender.cancel()
        await asyncio.gather(sender, return_exceptions=True)


async def test_a_charger_s_first_states_go_whole_and_the_next_pays_for_them() -> None:
    # A family's members are built one at a time and never wait in between (every change
    # behind them would wait too): the ceiling is paid after, by what comes next.
    clock = Clock()
    ceiling = CountedPace(1000.0, burst=1, clock=clock)
    store, broker = RetainedStore(_refused, ceiling=ceiling), Broker()
    store.put_family(Live("garage", ["g/a", "g/b", "g/c"]))
    store.put("carport/availability", b"online")
    sender = asyncio.create_task(store.send(broker, 5.0))  # type: ignore[arg-type]
    try:
        await held_or_drained(store, ceiling, 1)
        assert [topic for topic, _ in broker.got] == ["g/a", "g/b", "g/c"]
        clock.now += 0.002  # the level is -2: one token needs three ms
        await held_or_drained(store, ceiling, ceiling.held + 1)
        assert len(broker.got) == 3
        clock.now += 0.001
        await until(lambda: len(broker.got) == 4, "the change after the family")
    finally:
        sender.cancel()
        await asyncio.gather(sender, return_exceptions=True)


async def test_bulk_pays_the_ceiling_too() -> None:
    # The ceiling is of everything: a re-send at an unlimited bulk rate still goes at it.
    clock = Clock()
    ceiling = CountedPace(1000.0, burst=4, clock=clock)
    store, broker = RetainedStore(_refused, ceiling=ceiling), Broker()
    for n in range(4):
        store.put(f"t/{n}", b"1")
    sender = asyncio.create_task(store.send(broker, 5.0))  # type: ignore[arg-type]
    try:
        await until(lambda: len(broker.got) == 4, "the burst")
        clock.now += 0.001  # one token
        store.owe_everything()
        await until(lambda: len(broker.got) == 5, "one of the re-send")
        await held_or_drained(store, ceiling, ceiling.held + 1)
        assert len(broker.got) == 5
        clock.now += 0.003
        await until(lambda: len(broker.got) == 8, "the rest of the re-send")
    finally:
        sender.cancel()
        await asyncio.gather(sender, return_exceptions=True)


async def test_a_clean_stop_lifts_the_bulk_pace_but_not_the_ceiling() -> None:
    # The goodbye's seconds are for what is owed before the chargers' offline, bulk
    # included (held for tokens, "online" stayed retained once the bridge stopped); the
    # ceiling stays (raised no further than the offlines need: the tests below), or the
    # burst outran a subscriber and the broker dropped the offline.
    clock = Clock()
    pace = CountedPace(1000.0, burst=1, clock=clock)
    ceiling = CountedPace(1000.0, burst=8, clock=clock)
    store, broker = RetainedStore(_refused, pace=pace, ceiling=ceiling), Broker()
    store.put_family(configs("garage"))
    store.put_family(configs("carport"))  # held by the bulk pace
    store.put("garage/availability", b"online")
    sender = asyncio.create_task(store.send(broker, 5.0))  # type: ignore[arg-type]
    try:
        await held_or_drained(store, pace, 1)
        assert len(broker.got) == 3
        store.store("garage/availability", b"offline")
        await store.flush(sender, within=WAIT)  # the clock stands still: the ceiling's 8
        assert len(broker.got) == 7
        assert broker.last()["garage/availability"] == b"offline"
    finally:
        sender.cancel()
        await asyncio.gather(sender, return_exceptions=True)

    store, broker = (
        RetainedStore(_refused, ceiling=CountedPace(1000.0, burst=2, clock=clock)),
        Broker(),
    )
    for n in range(5):
        store.put(f"t/{n}", b"1")
    sender = asyncio.create_task(store.send(broker, 5.0))  # type: ignore[arg-type]
    try:
        await until(lambda: len(broker.got) == 2, "the ceiling's burst")
        await store.flush(sender, within=0.05)  # ends by its bound: nothing more went
        assert len(broker.got) == 2
    finally:
        sender.cancel()
        await asyncio.gather(sender, return_exceptions=True)


CHARGERS = 200


async def _offlines_flushed(
    store: RetainedStore, broker: Broker, ceiling: CountedPace, clock: Clock
) -> None:
    """The goodbye stores each charger's offline and flushes for a window of WAIT s;
    the window passes on the ceiling's clock once the sender looked at it again. Every
    offline went within it, and the ceiling is mqtt.max_rate again after."""
    sender = asyncio.create_task(store.send(broker, 5.0))  # type: ignore[arg-type]
    try:
        await until(lambda: not store._owes(), "the first states out")
        got = len(broker.got)
        for n in range(CHARGERS):
            store.store(f"c{n}/availability", b"offline")
        await held_or_drained(store, ceiling, 1)  # held: the ceiling's tokens are spent
        flushing = asyncio.create_task(store.flush(sender, within=WAIT))
        await held_or_drained(store, ceiling, ceiling.held + 1)  # looked again, flushing
        clock.now += WAIT  # the flush's window, on the ceiling's clock
        await flushing
        assert [p for _, p in broker.got[got:]] == [b"offline"] * CHARGERS
    finally:
        sender.cancel()
        await asyncio.gather(sender, return_exceptions=True)
    assert ceiling.rate == 10.0


async def test_a_clean_stop_raises_a_low_ceiling_until_the_offlines_fit_its_window() -> None:
    # mqtt.max_rate at its least (10 a second), its burst spent by the chargers' first
    # states: 200 offlines needed 20 s of a 10 s window (the stop's flush has 3), and the
    # broker kept "online" retained for those never sent. The retained copy outlives the
    # stop: the flush raises the ceiling as far as what is owed needs, no further.
    clock = Clock()
    ceiling = CountedPace(10.0, clock=clock)
    store, broker = RetainedStore(_refused, ceiling=ceiling), Broker()
    for n in range(BULK_BURST):
        store.put(f"c{n % CHARGERS}/state/{n}", b"1")
    await _offlines_flushed(store, broker, ceiling, clock)


async def test_a_clean_stop_wakes_a_sender_held_for_a_family_s_debt() -> None:
    # A family goes whole on a last token and is paid for after: a charger's 131 first
    # states at 10 a second held the sender 13 s, past the flush's window, whatever rate
    # the flush set meanwhile. It looks again at the raised ceiling.
    clock = Clock()
    ceiling = CountedPace(10.0, clock=clock)
    store, broker = RetainedStore(_refused, ceiling=ceiling), Broker()
    for n in range(BULK_BURST - 1):
        store.put(f"c{n % CHARGERS}/state/{n}", b"1")
    store.put_family(Live("c0", [f"c0/first/{k}" for k in range(131)]))  # on the last token
    await _offlines_flushed(store, broker, ceiling, clock)
