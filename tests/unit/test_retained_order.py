"""The retained store's order barrier: a message waits for the changes made before it."""

from __future__ import annotations

import asyncio
from typing import Any

from goe2mqtt.mqtt.retained import RetainedStore


class Broker:
    """Acknowledges a retained publish when the test says so (or at once)."""

    def __init__(self, *, hold: bool) -> None:
        self.hold = hold
        self.got: list[tuple[str, bytes]] = []
        self.release = asyncio.Event()

    async def publish(self, topic: str, payload: bytes, **_: Any) -> None:
        if self.hold:
            await self.release.wait()
        self.got.append((topic, payload))


def _refused(exc: Exception) -> None:
    raise AssertionError(exc)


async def test_a_barrier_waits_for_the_changes_before_it_and_not_for_later_ones() -> None:
    store = RetainedStore(_refused)
    broker = Broker(hold=True)
    store.put("a/state", b"16")
    barrier = store.barrier()
    sender = asyncio.create_task(store.send(broker, 5.0))  # type: ignore[arg-type]
    waiting = asyncio.create_task(store.settled(barrier))
    await asyncio.sleep(0)  # both run up to the broker that holds
    store.put("b/state", b"later")  # after the barrier: never waited for
    assert not waiting.done()
    broker.release.set()
    await asyncio.wait_for(waiting, 5)
    assert ("a/state", b"16") in broker.got
    sender.cancel()
    await asyncio.gather(sender, return_exceptions=True)


async def test_a_change_made_again_while_on_its_way_is_waited_for_too() -> None:
    store = RetainedStore(_refused)
    broker = Broker(hold=True)
    store.put("a/state", b"1")
    sender = asyncio.create_task(store.send(broker, 5.0))  # type: ignore[arg-type]
    await asyncio.sleep(0)  # "1" is on its way
    store.put("a/state", b"2")  # before the barrier: its newest value must be out first
    waiting = asyncio.create_task(store.settled(store.barrier()))
    broker.release.set()
    await asyncio.wait_for(waiting, 5)
    assert broker.got[-1] == ("a/state", b"2")
    sender.cancel()
    await asyncio.gather(sender, return_exceptions=True)


async def test_what_a_barrier_needs_stays_bounded_without_any_barrier() -> None:
    """A day of changes and no result: the bookkeeping does not grow with the changes."""
    store = RetainedStore(_refused)
    broker = Broker(hold=False)
    sender = asyncio.create_task(store.send(broker, 5.0))  # type: ignore[arg-type]
    for n in range(20_000):
        store.put(f"charger/{n % 50}", str(n).encode())
        if n % 100 == 0:
            await asyncio.sleep(0)  # let the sender acknowledge
    assert len(store._order._heap) <= 2 * 50 + 1024 + 1
    sender.cancel()
    await asyncio.gather(sender, return_exceptions=True)
