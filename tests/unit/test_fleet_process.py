"""What keeps one process healthy at fleet size: shared copies, a small bridge/info,
a watched event loop, freed memory given back (pure or in-process; no sockets)."""

from __future__ import annotations

import asyncio
import gc
import time
import weakref
from dataclasses import InitVar, dataclass, field
from typing import Any

import pytest
import structlog.testing

from goe2mqtt.bridge.info import DETAIL_LIMIT, fleet_info
from goe2mqtt.bridge.loop_watch import (
    HOLD_LOGGED,
    HOLDS_LOGGED_PER_MINUTE,
    QUIET_EVERY,
    SAMPLE_EVERY,
    LoopWatch,
    sample_plan,
)
from goe2mqtt.bridge.memory import (
    BUSY_CPU,
    REFREEZE_GROWTH_MIN_MIB,
    TRIM_WORTH,
    YOUNG_EVERY,
    YOUNG_QUIET_EVERY,
    YOUNG_WORTH,
    MemoryUpkeep,
    grown,
    release_free_memory,
    rss_mib,
    young_plan,
)
from goe2mqtt.charger.availability import Availability
from goe2mqtt.charger.rules import next_due
from goe2mqtt.commands.outcomes import CommandStats
from goe2mqtt.util.interning import Interner


def test_the_interner_shares_equal_values_and_stays_bounded() -> None:
    intern: Interner[frozenset[str]] = Interner(limit=2)
    first = frozenset({"amp", "car"})
    assert intern(frozenset({"car", "amp"})) is intern(first)
    other, third = frozenset({"nrg"}), frozenset({"eto"})
    assert intern(other) is other
    # Full: a new value comes back as it is, equal and unshared; the kept ones stay shared.
    copy = frozenset({"eto"})
    assert intern(third) is third
    assert intern(copy) is copy
    assert len(intern) == 2
    assert intern(frozenset({"amp", "car"})) is intern(first)


@dataclass
class FakeCharger:
    online: InitVar[bool] = True  # a real charger starts offline: these start online
    last_error: tuple[float, str] | None = None
    queued: int = 0
    commands: CommandStats = field(default_factory=CommandStats)
    availability: Availability = field(default_factory=lambda: Availability("fake"))

    def __post_init__(self, online: bool) -> None:
        self.availability.online = online

    def info(self) -> dict[str, Any]:
        up = self.availability
        return {"online": up.online, "consecutive_failures": up.failures}


def test_bridge_info_lists_every_charger_of_a_small_fleet() -> None:
    chargers = {"garage": FakeCharger(), "carport": FakeCharger(online=False)}
    chargers["garage"].commands.ok = 3
    info = fleet_info(chargers, CommandStats(rejected=1))
    assert info["chargers"] == {
        "garage": {"online": True, "consecutive_failures": 0},
        "carport": {"online": False, "consecutive_failures": 0},
    }
    assert (info["chargers_shown"], info["chargers_total"], info["chargers_online"]) == (
        "all",
        2,
        1,
    )
    assert info["commands"] == {"ok": 3, "rejected": 1, "failed": 0}


def test_bridge_info_of_a_large_fleet_lists_only_chargers_needing_a_look() -> None:
    chargers = {f"c{i:05d}": FakeCharger() for i in range(10_000)}
    chargers["c00007"].availability.online = False
    chargers["c00500"].availability.failures = 2
    chargers["c09999"].queued = 1
    chargers["c04000"].last_error = (1_700_000_000.0, "poll failed: timed out")
    info = fleet_info(chargers, CommandStats())
    assert set(info["chargers"]) == {"c00007", "c00500", "c09999"}
    assert (info["chargers_shown"], info["chargers_total"], info["chargers_online"]) == (
        "needing_attention",
        10_000,
        9_999,
    )
    assert info["last_error"]["charger"] == "c04000"
    # A fleet where everything fails still gives a bounded payload, with true counts.
    for charger in chargers.values():
        charger.availability.online = False
    info = fleet_info(chargers, CommandStats())
    assert len(info["chargers"]) == DETAIL_LIMIT
    assert (info["chargers_total"], info["chargers_online"]) == (10_000, 0)


def busy_call(cpu_seconds: float) -> None:
    """Work of our own on the loop (a collection, encoding): the loop's thread takes
    this much CPU before it returns."""
    start = time.thread_time()
    while time.thread_time() - start < cpu_seconds:
        pass


def quiet_stretch(every: float, samples: int) -> float:
    """Samples of an idle loop (on time, 0.2 % of its time working): the next sleep."""
    for _ in range(samples):
        hold, every = sample_plan(every, 0.0005, 0.002 * every)
        assert hold < HOLD_LOGGED
    return every


def test_a_busy_loop_is_sampled_often_and_a_hold_seen_by_lateness() -> None:
    assert sample_plan(SAMPLE_EVERY, 0.001, 0.05) == (0.001, SAMPLE_EVERY)  # half the time
    assert sample_plan(SAMPLE_EVERY, 0.3, 0.3) == (0.3, SAMPLE_EVERY)  # a 0.3 s hold
    # a hold that ends before a 100 ms sample's deadline stays unseen, as ever
    assert sample_plan(SAMPLE_EVERY, 0.0005, 0.08).hold == 0.0005


def test_a_quiet_loop_is_sampled_less_often_and_a_hold_after_it_still_seen() -> None:
    """Issue 32: ten samples a second were most of an idle daemon's wake-ups."""
    every = quiet_stretch(SAMPLE_EVERY, 3)
    assert SAMPLE_EVERY < every < QUIET_EVERY  # twice as far apart each time
    every = quiet_stretch(every, 10)
    assert every == QUIET_EVERY
    # a 0.3 s hold of our own that ended before the 1 s sample's deadline: not late,
    # but the loop's CPU in that second tells it (and whatever little else ran)
    hold, after = sample_plan(every, 0.0004, 0.3 + 0.002)
    assert 0.3 <= hold <= 0.31
    assert after == SAMPLE_EVERY  # held: sampled often again
    # one that covers the deadline: the longer of the two
    assert sample_plan(QUIET_EVERY, 0.2, 0.302).hold == 0.302
    # a blocking wait (no CPU) over the deadline is seen by its lateness
    assert sample_plan(QUIET_EVERY, 0.3, 0.001) == (0.3, SAMPLE_EVERY)
    # the price: one that ends between two quiet samples is not (README, loop_watch)
    assert sample_plan(QUIET_EVERY, 0.0005, 0.001).hold < HOLD_LOGGED


def test_the_watch_records_a_hold_after_an_idle_stretch() -> None:
    watch = LoopWatch()
    every = SAMPLE_EVERY
    with structlog.testing.capture_logs() as logs:
        for _ in range(20):  # the samples run() would take, driven directly
            watch.sampled(every, 0.0005, 0.003 * every, 0.002 * every, 0.0)
            every = watch._every
        assert every == QUIET_EVERY
        watch.sampled(every, 0.0004, 0.31, 0.302, 0.0)
    assert watch._every == SAMPLE_EVERY
    assert [(e["event"], e["ms"], e["sample_ms"]) for e in logs] == [("loop_held", 302.0, 1000)]
    report = watch.report()
    assert (report["lag_max_ms"], report["lag_max_cpu_ms"]) == (302.0, 310.0)


def test_the_loop_watch_sees_a_held_loop_and_collections() -> None:
    async def scenario() -> tuple[dict[str, Any], dict[str, Any]]:
        watch = LoopWatch()
        task = asyncio.create_task(watch.run())
        await asyncio.sleep(0.25)
        busy_call(0.4)  # seen busy (late) or quiet (the loop's CPU), whichever it is
        gc.collect()
        await asyncio.sleep(0.25)
        held = watch.report()
        after = watch.report()  # a report covers the time since the one before
        task.cancel()
        await asyncio.gather(task, return_exceptions=True)
        return held, after

    held, after = asyncio.run(scenario())
    assert held["lag_max_ms"] >= 250  # held 400 ms; the watch samples every 100-200 ms
    assert held["gc_full_collections"] >= 1
    assert held["gc_pause_max_ms"] >= 0
    assert after["gc_full_collections"] == 0
    assert after["lag_max_ms"] < held["lag_max_ms"]
    assert LoopWatch()._on_gc not in gc.callbacks


def test_a_hold_is_logged_with_the_collections_inside_it() -> None:
    """Each hold of the loop is a log line: how long, and how much of it was the garbage
    collector's (at 10 000 chargers the hold's cause was not known: now each one says)."""

    async def scenario() -> None:
        watch = LoopWatch()
        task = asyncio.create_task(watch.run())
        await asyncio.sleep(0.15)
        busy_call(0.3)  # a hold without a collection
        await asyncio.sleep(0.15)
        garbage = [[] for _ in range(200_000)]
        for item in garbage:
            item.append(item)  # cycles: only the collector frees them
        del garbage, item
        gc.collect()
        busy_call(0.3)  # the same sample: a hold with a full collection inside
        await asyncio.sleep(0.15)
        task.cancel()
        await asyncio.gather(task, return_exceptions=True)

    gc.disable()  # no automatic collection: only the one above is inside a hold
    try:
        with structlog.testing.capture_logs() as logs:
            asyncio.run(scenario())
    finally:
        gc.enable()
    holds = [entry for entry in logs if entry["event"] == "loop_held"]
    plain = [h for h in holds if h["gc_ms"] == 0 and h["ms"] >= 200]
    collected = [h for h in holds if h["gc_ms"] > 0]
    assert plain
    assert plain[0]["gc_generation"] is None
    assert len(collected) == 1
    assert collected[0]["ms"] >= 200
    assert collected[0]["gc_generation"] == 2


def test_held_again_and_again_logs_a_few_lines_a_minute() -> None:
    watch = LoopWatch()
    with structlog.testing.capture_logs() as logs:
        for _ in range(100):
            watch._log_hold(0.5, 0.5, 0.0, SAMPLE_EVERY)
    assert len(logs) == HOLDS_LOGGED_PER_MINUTE


def test_freed_heap_memory_goes_back_to_the_system() -> None:
    """Blocks freed between live ones stay in the process until trimmed (glibc)."""
    # What earlier tests freed goes back first: reused, it made the blocks below grow the
    # process by less than they weigh (96 of 160 MiB in one CI order), not a lack of trim.
    release_free_memory()
    before = rss_mib()
    assert before is not None
    blocks = [bytes(4000) + bytes([i % 256]) for i in range(40_000)]  # ~160 MiB via malloc
    kept = blocks[::16]  # the live ones keep the heap from shrinking at its top
    del blocks
    gc.collect()
    fragmented = rss_mib()
    assert fragmented is not None
    assert fragmented - before > 100
    assert release_free_memory()
    trimmed = rss_mib()
    assert trimmed is not None
    assert fragmented - trimmed > 100
    assert len(kept) == 2500


def test_a_process_trims_once_it_grew_enough_to_be_worth_it() -> None:
    """One charger: a trim gives back less than loading ctypes to call it costs."""

    async def scenario(trim_worth: float, grow: bool) -> dict[str, Any]:
        upkeep, stop, polled = MemoryUpkeep(trim_worth=trim_worth), asyncio.Event(), [False]

        def ready() -> bool:
            if polled[0]:
                stop.set()  # it ends after the start-up freeze and the trim (or none) with it
            return polled[0]

        task = asyncio.create_task(upkeep.run(stop, ready=ready, at_most=60))
        await asyncio.sleep(0)  # started: the size it started at is known
        blocks = [bytes(4000) + bytes([i % 256]) for i in range(40_000 if grow else 0)]
        kept = blocks[::16]  # the live ones keep the heap from shrinking at its top
        del blocks
        polled[0] = True
        await task
        assert len(kept) == (2500 if grow else 0)
        return upkeep.report()

    try:
        small = asyncio.run(scenario(TRIM_WORTH, grow=False))
        grown = asyncio.run(scenario(100, grow=True))
    finally:
        gc.unfreeze()
    assert "freeze_ms" in small
    assert "trim_ms" not in small
    assert grown["trim_freed_mib"] > 50


def test_upkeep_collects_nothing_while_the_fleet_starts_then_freezes_and_trims() -> None:
    async def scenario() -> list[tuple[bool, int]]:
        upkeep, stop, polled = MemoryUpkeep(trim_worth=0), asyncio.Event(), [False]
        task = asyncio.create_task(upkeep.run(stop, ready=lambda: polled[0], at_most=60))
        seen = []
        await asyncio.sleep(0.05)
        seen.append((gc.isenabled(), gc.get_freeze_count()))  # starting: no collections
        polled[0] = True  # every charger had its first poll
        await asyncio.sleep(1.5)
        seen.append((gc.isenabled(), gc.get_freeze_count()))
        stop.set()
        await task
        report = upkeep.report()
        assert {"freeze_ms", "trim_ms", "rss_mib"} <= set(report)
        assert gc.get_freeze_count() == 0  # a stopped upkeep leaves nothing frozen
        return seen

    try:
        starting, running = asyncio.run(scenario())
    finally:
        gc.unfreeze()
    assert starting == (False, 0)
    assert running[0] is True
    assert running[1] > 1000  # the interpreter's and the test's objects, left alone now


def test_after_start_up_what_survives_a_second_is_frozen_and_garbage_is_still_collected() -> None:
    """Full collections walk only what the last second made (see goe2mqtt.bridge.memory)."""

    class Cycle:
        def __init__(self) -> None:
            self.me = self

    async def scenario() -> tuple[bool, bool, bool]:
        upkeep, stop = MemoryUpkeep(), asyncio.Event()
        task = asyncio.create_task(upkeep.run(stop, ready=lambda: True, at_most=60))
        await asyncio.sleep(0.2)  # the start-up freeze is done
        kept = {"made": "after start-up", "items": []}
        garbage = weakref.ref(Cycle())  # unreachable at once, freed only by a collection
        assert any(o is kept for o in gc.get_objects())  # walked by collections, for now
        await asyncio.sleep(1.5)
        frozen = not any(o is kept for o in gc.get_objects())
        stop.set()
        await task
        return frozen, garbage() is None, gc.isenabled()

    try:
        frozen, collected, enabled = asyncio.run(scenario())
    finally:
        gc.unfreeze()
    assert frozen
    assert collected
    assert enabled


def test_upkeep_does_not_wait_for_chargers_that_never_answer_beyond_its_bound() -> None:
    async def scenario() -> int:
        upkeep, stop = MemoryUpkeep(), asyncio.Event()
        task = asyncio.create_task(upkeep.run(stop, ready=lambda: False, at_most=0.5))
        await asyncio.sleep(1.5)
        frozen = gc.get_freeze_count()
        stop.set()
        await task
        assert gc.get_freeze_count() == 0
        return frozen

    try:
        assert asyncio.run(scenario()) > 1000
        assert gc.isenabled()
    finally:
        gc.unfreeze()


def test_a_stop_while_starting_leaves_the_collector_on() -> None:
    async def scenario() -> None:
        upkeep, stop = MemoryUpkeep(), asyncio.Event()
        task = asyncio.create_task(upkeep.run(stop, ready=lambda: False, at_most=60))
        await asyncio.sleep(0.05)
        assert not gc.isenabled()
        stop.set()
        await task

    asyncio.run(scenario())
    assert gc.isenabled()
    assert gc.get_freeze_count() == 0


def test_a_late_poll_keeps_the_chargers_place_in_the_schedule() -> None:
    # Due at 100 s every 10 s; a 1.2 s stall ran it at 101.2: the next is due at 110, so
    # the chargers a stall bunched together go back to their own times.
    assert next_due(100.0, 10.0, now=101.3) == 110.0
    # An answer slower than the interval: a full interval from now, no hurried catch-up.
    assert next_due(100.0, 10.0, now=112.0) == 122.0
    # Backoff or idle: the next delay is whatever the charger's state asks for.
    assert next_due(100.0, 30.0, now=100.2) == 130.0


def test_memory_grown_by_a_quarter_since_the_last_full_collection_calls_for_one() -> None:
    assert not grown(620.0, since=500.0)  # 24 %
    assert grown(630.0, since=500.0)  # 26 %
    # A small process: a tenth is noise, a full walk is cheap but not for nothing.
    assert not grown(60.0 + REFREEZE_GROWTH_MIN_MIB - 1, since=60.0)
    assert grown(60.0 + REFREEZE_GROWTH_MIN_MIB + 1, since=60.0)
    assert not grown(None, since=500.0)  # no /proc: the hourly full collection only
    assert not grown(900.0, since=None)


def test_upkeep_collects_what_is_new_each_tick_and_in_full_once_memory_grew(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Each tick walks only what the last tick made (at 10 000 websocket chargers a
    second's worth held the loop 150-900 ms). Cycles that die older are frozen with the
    living: a full collection frees them once the resident memory grew, but not again
    and again while a fleet still connecting grows."""
    import goe2mqtt.bridge.memory as memory

    steps: list[str] = []
    rss, ticks = [500.0], [500.0, 600.0, 700.0, 1000.0, 1000.0, 1000.0]  # MiB at each tick
    stop = asyncio.Event()
    now = [0.0]

    def young() -> int:
        steps.append("young")
        return 0

    def full() -> int:
        steps.append("full")
        return 0

    async def wait(event: asyncio.Event, seconds: float) -> bool:
        if not ticks:
            event.set()
        else:
            rss[0] = ticks.pop(0)
            now[0] += memory.GROWN_AT_MOST_EVERY / 2  # two ticks apart at the most often
        return event.is_set()

    monkeypatch.setattr(memory, "collect_young", young)
    monkeypatch.setattr(memory, "freeze_heap", full)
    monkeypatch.setattr(memory, "rss_mib", lambda: rss[0])
    monkeypatch.setattr(memory, "GROWTH_CHECK_EVERY", 0.0)
    monkeypatch.setattr(memory, "wait_until_set", wait)
    monkeypatch.setattr(memory, "_malloc_trim", lambda: None)

    async def keep() -> None:
        monkeypatch.setattr(asyncio.get_running_loop(), "time", lambda: now[0])
        await MemoryUpkeep()._keep(stop)

    asyncio.run(keep())
    # 600: 20 % over 500; 700: 40 %, then measured from 700; 1000: 43 %, but the last
    # full one was a tick ago: the next tick; then measured from 1000.
    assert steps == ["young", "young", "full", "young", "full", "young"]


def test_a_busy_process_walks_what_it_made_only_when_it_may_hold_garbage() -> None:
    """A fleet's sockets make ~100 000 objects a second that die by their counts: a walk
    of them found nothing, at 12 % of the bridge's CPU. Busy, it looks every tenth of a
    second and only freezes, unless the objects made net (made minus freed, as garbage
    is never freed) reach YOUNG_WORTH."""
    busy = 2 * BUSY_CPU
    assert young_plan(0, busy, YOUNG_EVERY) == (False, YOUNG_EVERY)
    assert young_plan(YOUNG_WORTH - 1, busy, YOUNG_EVERY) == (False, YOUNG_EVERY)
    assert young_plan(YOUNG_WORTH, busy, YOUNG_EVERY) == (True, YOUNG_EVERY)
    # Busy again after a quiet spell: back to every tenth of a second at once.
    assert young_plan(10, busy, YOUNG_QUIET_EVERY) == (False, YOUNG_EVERY)


def test_a_quiet_process_looks_ever_less_often_and_walks_its_little_each_time() -> None:
    """One charger: not ten wake-ups a second for nothing; what it made is little to walk."""
    quiet = BUSY_CPU / 2
    every, seen = YOUNG_EVERY, []
    for _ in range(8):
        collect, every = young_plan(3, quiet, every)
        assert collect
        seen.append(every)
    assert seen == sorted(seen)  # never more often
    assert seen[0] == 2 * YOUNG_EVERY
    assert seen[-1] == YOUNG_QUIET_EVERY  # and no rarer than that
    assert young_plan(10 * YOUNG_WORTH, quiet, YOUNG_EVERY)[0]  # quiet yet made much: walked
