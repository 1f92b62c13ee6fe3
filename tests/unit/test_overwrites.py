"""When someone else's write on a topic of ours is answered (mqtt/overwrites.py)."""

from __future__ import annotations

import heapq
import itertools
import random

from goe2mqtt.mqtt import overwrites
from goe2mqtt.mqtt.overwrites import Overwrites


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def test_a_streak_is_answered_at_once_then_spaced_then_left_then_answered_again() -> None:
    clock = Clock()
    watch = Overwrites("retained", spaced=True, clock=clock, jitter=lambda: 1.0)
    delays = []
    for _ in range(overwrites.GIVE_UP_AFTER + 2):
        delays.append(watch.answer_in("t", b"x"))
        clock.now += 1
    at_once = overwrites.AT_ONCE
    assert delays[:at_once] == [0.0] * at_once
    assert delays[at_once : at_once + 3] == [1.0, 2.0, 4.0]
    assert delays[overwrites.GIVE_UP_AFTER :] == [None, None]  # left to the other writer
    assert watch.left("t")
    clock.now += overwrites.STREAK_ENDS + 1  # left alone for long enough
    assert not watch.left("t")
    assert watch.answer_in("t", b"x") == 0.0


def test_the_availability_is_answered_each_time() -> None:
    watch = Overwrites("availability", spaced=False, clock=Clock())
    assert [watch.answer_in("a", b"offline") for _ in range(50)] == [0.0] * 50


def test_streaks_stay_bounded_and_a_flood_on_new_topics_walks_them_rarely() -> None:
    clock = Clock()
    watch = Overwrites("retained", spaced=True, clock=clock)
    for n in range(overwrites.TRACKED):
        watch.answer_in(f"t{n}", b"x")
    pruned = []
    prune = watch._prune

    def counted(now: float) -> None:
        pruned.append(now)
        prune(now)

    watch._prune = counted  # type: ignore[method-assign]
    for n in range(1000):  # past the bound: not answered, and not a walk each
        assert watch.answer_in(f"new{n}", b"x") is None
    assert len(pruned) <= 1
    assert len(watch._streaks) == overwrites.TRACKED


LATENCY = 0.002  # s: a write of one bridge reaches the other


class Twin:
    """A bridge's answers on one topic as mqtt/own_topics.py gives them: a write of the
    other's while our answer is owed is covered by it, not counted."""

    def __init__(self, value: str, clock: Clock, seed: int | None) -> None:
        self.value = value
        rng = random.Random(seed)
        jitter = (lambda: 1.0) if seed is None else (lambda: rng.uniform(0.5, 1.5))
        self.watch = Overwrites("retained", spaced=True, clock=clock, jitter=jitter)
        self.answering = False


def two_bridges_begin_together(seed_a: int | None, seed_b: int | None) -> tuple[Twin, Twin, str]:
    """Both write their value at the same moment; the topic's last word when they stop."""
    clock = Clock()
    twins = (Twin("a", clock, seed_a), Twin("b", clock, seed_b))
    events: list[tuple[float, int, str, int]] = []  # time, order, what, whose
    order = itertools.count()
    for index in (0, 1):
        heapq.heappush(events, (clock.now, next(order), "write", index))
    last = ""
    while events:
        clock.now, _, what, index = heapq.heappop(events)
        twin, other = twins[index], 1 - index
        if what == "write":
            twin.answering, last = False, twin.value
            heapq.heappush(events, (clock.now + LATENCY, next(order), "arrive", other))
            continue
        if twin.answering:
            continue  # our owed answer covers it
        if twin.watch.left("t"):
            twin.watch.answer_in("t", b"x")  # counted, left
            continue
        delay = twin.watch.answer_in("t", b"x")
        if delay is not None:
            twin.answering = True
            heapq.heappush(events, (clock.now + delay, next(order), "write", index))
    return twins[0], twins[1], last


def test_two_bridges_that_begin_together_leave_the_topic_to_one_of_them() -> None:
    for seed in range(300):
        a, b, last = two_bridges_begin_together(2 * seed, 2 * seed + 1)
        gave_up = [twin for twin in (a, b) if twin.watch.unanswered]
        assert len(gave_up) == 1, seed  # one gives up, the other keeps the topic
        keeper = b if gave_up[0] is a else a
        assert last == keeper.value, seed


def test_without_the_jitter_they_gave_up_together() -> None:
    """What the jitter mends: answers in lockstep, counted alike, given up at once."""
    a, b, _ = two_bridges_begin_together(None, None)
    assert a.watch.unanswered
    assert b.watch.unanswered
