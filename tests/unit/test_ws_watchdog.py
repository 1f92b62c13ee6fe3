"""The fleet's websocket watchdog: looks run in their order, once; a disarmed look does
not run; one that raises does not stop the others."""

from __future__ import annotations

import asyncio
import gc
import weakref

from structlog.testing import capture_logs

from goe2mqtt.goe.ws_watchdog import SLOT, watchdogs


def test_looks_run_in_order_and_a_disarmed_one_never() -> None:
    async def scenario() -> tuple[list[str], int]:
        loop = asyncio.get_running_loop()
        dogs, done, ran = watchdogs(), asyncio.Event(), list[str]()
        assert watchdogs() is dogs  # one per loop
        start = loop.time()

        def arm(name: str, after: float, owner: object | None = None) -> int:
            at = start + after

            def look() -> None:
                ran.append(name)
                if name == "last":
                    done.set()

            return dogs.arm(owner if owner is not None else object(), at, look)

        def broken() -> None:
            raise RuntimeError("a link's bug")

        arm("last", 4 * SLOT)
        arm("third", 3 * SLOT)
        arm("first", 0.0)
        dogs.arm(object(), start, broken)  # in the first slot, after "first"
        arm("second", SLOT)
        gone = object()
        dogs.disarm(gone, arm("disarmed", 2 * SLOT, gone))
        dogs.disarm(object(), arm("kept", 2 * SLOT))  # another owner's disarm: no effect
        await done.wait()
        return ran, len(dogs._due)

    with capture_logs() as logs:
        ran, left = asyncio.run(scenario())
    assert ran == ["first", "second", "kept", "third", "last"]
    assert [e["event"] for e in logs] == ["websocket_watchdog_crashed"]
    assert left == 0  # nothing armed: no timer left behind


def test_a_look_armed_again_by_its_owner_in_a_slot_runs_once() -> None:
    async def scenario() -> list[str]:
        loop = asyncio.get_running_loop()
        dogs, done, ran, owner = watchdogs(), asyncio.Event(), list[str](), object()
        at = loop.time() + SLOT
        dogs.arm(owner, at, lambda: ran.append("earlier"))
        dogs.arm(owner, at, lambda: ran.append("later"))
        dogs.arm(object(), at + SLOT, done.set)
        await done.wait()
        return ran

    assert asyncio.run(scenario()) == ["later"]


def test_an_ended_loop_leaves_its_watchdogs_behind_for_the_collector() -> None:
    async def scenario() -> weakref.ref[asyncio.AbstractEventLoop]:
        loop, done = asyncio.get_running_loop(), asyncio.Event()
        watchdogs().arm(object(), loop.time(), done.set)
        await done.wait()
        return weakref.ref(loop)

    loop = asyncio.run(scenario())
    gc.collect()
    assert loop() is None


def test_a_link_looks_at_the_first_step_after_its_last_frame_still_ahead() -> None:
    from goe2mqtt.goe.ws_watchdog import next_look, reached

    after = (5.0, 10.0, 50.0)
    assert next_look(100.0, 99.0, after) == 104.0
    assert next_look(100.0, 94.0, after) == 104.0  # 99 is past: the 10 s step
    assert next_look(100.0, 99.0, after, 101.0, None) == 101.0  # due sooner (not live yet)
    assert next_look(100.0, 99.0, after, None, 120.0) == 104.0
    assert next_look(100.0, 40.0, after) == 100.0  # nothing ahead: now
    assert next_look(100.0, 40.0, after, 130.0) == 130.0
    assert [reached(age, (5.0, 10.0)) for age in (0.0, 4.9, 5.0, 9.0, 10.0, 99.0)] == [
        0.0, 0.0, 5.0, 5.0, 10.0, 10.0]  # fmt: skip
