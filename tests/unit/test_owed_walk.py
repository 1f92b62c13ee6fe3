"""The owed queues' walk is linear: draining N names visits O(N) entries, not O(N^2).

A dict found its first entry past every slot deleted from its front (until it grew
again): the sender peeks before each take, so a drain of 100 000 names walked ~5 000
million slots, ~3 s of CPU (bench/owed_drain.py). Counted here, not timed: each queue is
an OrderedDict whose walks are counted, entry by entry.
"""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Iterator
from typing import Any

import pytest

from goe2mqtt.mqtt import owed
from goe2mqtt.mqtt.retained import RetainedStore

visited = [0]


class Counted(OrderedDict[Any, Any]):
    """An OrderedDict that counts every entry a walk over it visits."""

    def __iter__(self) -> Iterator[Any]:
        for key in super().__iter__():
            visited[0] += 1
            yield key


@pytest.fixture(autouse=True)
def counted(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(owed, "OrderedDict", Counted)
    visited[0] = 0


def _refused(exc: Exception) -> None:
    raise AssertionError(exc)


def _drain(store: RetainedStore) -> list[str]:
    """Take everything owed as the sender does (_bulk() before each _take())."""
    taken = []
    while True:
        store._bulk()
        item = store._take()
        if item is None:
            return taken
        store._delivered(item[0], item[2])
        taken.append(item[0])


def _walked(n: int) -> int:
    """Entries visited draining n changes, then n re-sends with a change among them."""
    visited[0] = 0
    store = RetainedStore(_refused)
    topics = [f"c{i // 100}/t{i % 100}" for i in range(n)]
    for i, topic in enumerate(topics):
        store.put(topic, b"%d" % i)
    assert _drain(store) == topics
    store.owe_everything()
    assert _drain(store) == topics  # the re-send: in the order they last changed
    store.owe_everything()
    store.put(topics[n // 2], b"changed")  # a change goes ahead of the re-sends left
    taken = _drain(store)
    assert taken[0] == topics[n // 2]
    assert sorted(taken) == sorted(topics)
    return visited[0]


def test_draining_ten_times_the_names_visits_ten_times_the_entries() -> None:
    small, large = _walked(2_000), _walked(20_000)
    assert small <= 3 * 2 * 2_000  # a few visits a name, not one per slot before it
    assert large <= 10 * small + 10


def test_a_queue_drained_from_its_front_finds_each_head_in_one_step() -> None:
    queue = owed.Owed()
    for i in range(1_000):
        queue.change(f"t/{i}", i)
        queue.again(f"a/{i}")
    visited[0] = 0
    names = []
    while queue.peek() is not None:
        names.append(queue.take())
    assert names == [f"t/{i}" for i in range(1_000)] + [f"a/{i}" for i in range(1_000)]
    assert visited[0] == 2_000  # one entry visited for each head found
