"""When someone else's write on a topic of ours is answered (mqtt/overwrites.py)."""

from __future__ import annotations

from goe2mqtt.mqtt import overwrites
from goe2mqtt.mqtt.overwrites import Overwrites


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def test_a_streak_is_answered_at_once_then_spaced_then_left_then_answered_again() -> None:
    clock = Clock()
    watch = Overwrites("retained", spaced=True, clock=clock)
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
