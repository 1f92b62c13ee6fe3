"""A family of retained topics (a charger's discovery configs) is kept as what builds
them, not as their payloads: sent whole when new or owed again, member by member when
some changed, the newest value of every topic last, a barrier covering them all."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from typing import Any

import aiomqtt

from goe2mqtt.mqtt.families import FAMILY
from goe2mqtt.mqtt.retained import RetainedStore


class Configs:
    """A family whose members are given; counts how often they were built."""

    def __init__(self, name: str, members: dict[str, bytes]) -> None:
        self.key = f"{FAMILY}{name}"
        self._members = dict(members)
        self.built = 0

    @property
    def size(self) -> int:
        return len(self._members)

    def __eq__(self, other: object) -> bool:
        return isinstance(other, Configs) and self._members == other._members

    def __hash__(self) -> int:
        return hash(self.key)

    def topics(self) -> Iterator[str]:
        return iter(list(self._members))

    def members(self) -> Iterator[tuple[str, bytes]]:
        for topic, payload in list(self._members.items()):
            self.built += 1
            yield topic, payload


def configs(name: str = "garage", **payloads: str) -> Configs:
    members = {f"ha/{name}/{key}/config": f'{{"v": "{key}"}}'.encode() for key in "abc"}
    members.update({f"ha/{name}/{key}/config": text.encode() for key, text in payloads.items()})
    return Configs(name, members)


class Broker:
    """Acknowledges every publish (or holds them until released; or fails one topic)."""

    def __init__(self, *, hold: bool = False, fail: str | None = None) -> None:
        self.got: list[tuple[str, bytes]] = []
        self.release = asyncio.Event()
        if not hold:
            self.release.set()
        self.fail = fail
        self.inflight = 0

    async def publish(self, topic: str, payload: bytes, **_: Any) -> None:
        self.inflight += 1
        try:
            await self.release.wait()
            if topic == self.fail:
                self.fail = None
                raise aiomqtt.MqttError("connection lost")
            self.got.append((topic, payload))
        finally:
            self.inflight -= 1

    def last(self) -> dict[str, bytes]:
        return dict(self.got)


def _refused(exc: Exception) -> None:
    raise AssertionError(exc)


async def drained(store: RetainedStore, broker: Broker) -> None:
    """Send until nothing is owed and every publish was answered."""
    sender = asyncio.create_task(store.send(broker, 5.0))  # type: ignore[arg-type]

    async def idle() -> None:
        await asyncio.sleep(0)  # the sender takes what is owed
        while store.backlog or broker.inflight:  # noqa: ASYNC110 - the sender's state
            await asyncio.sleep(0)

    await asyncio.wait_for(idle(), 5)
    sender.cancel()
    await asyncio.gather(sender, return_exceptions=True)


async def test_a_new_family_goes_out_whole_and_no_payload_of_it_is_held() -> None:
    store, broker, family = RetainedStore(_refused), Broker(), configs()
    store.put_family(family)
    assert store.backlog == 3
    await drained(store, broker)
    assert broker.got == list(family.members())
    assert list(store.retained) == [family.key]  # the family, none of its payloads
    assert store.backlog == 0


async def test_only_the_members_that_changed_go_out_again() -> None:
    store, broker = RetainedStore(_refused), Broker()
    store.put_family(configs())
    await drained(store, broker)
    broker.got.clear()
    store.put_family(configs())  # builds the same: nothing owed
    assert store.backlog == 0
    store.put_family(configs(b='{"v": "B"}'))
    await drained(store, broker)
    assert broker.got == [("ha/garage/b/config", b'{"v": "B"}')]


async def test_owed_again_it_is_built_again_from_the_newest_family() -> None:
    store, broker = RetainedStore(_refused), Broker()
    store.put_family(configs())
    await drained(store, broker)
    newest = configs(a='{"v": "A"}')
    store.put_family(newest)
    store.owe_everything()  # a reconnect before the change went out
    await drained(store, broker)
    assert broker.last() == dict(newest.members())


async def test_a_republish_sends_the_configs_before_the_online_that_vouches_for_them() -> None:
    """Also after a config changed: the family keeps its place, built as it is then."""
    store, broker = RetainedStore(_refused), Broker()
    store.put_family(configs())
    store.put("goe/garage/availability", b"online")
    await drained(store, broker)
    newest = configs(b='{"v": "B"}')
    store.put_family(newest)
    await drained(store, broker)
    broker.got.clear()
    store.owe_everything()
    await drained(store, broker)
    assert broker.got == [*newest.members(), ("goe/garage/availability", b"online")]


async def test_changed_while_it_goes_out_whole_the_newest_values_come_last() -> None:
    store, broker = RetainedStore(_refused), Broker(hold=True)
    store.put_family(configs())
    sender = asyncio.create_task(store.send(broker, 5.0))  # type: ignore[arg-type]
    await asyncio.sleep(0)  # the first members are on their way
    newest = configs(a='{"v": "A"}', c='{"v": "C"}')
    store.put_family(newest)
    barrier = store.barrier()
    waiting = asyncio.create_task(store.settled(barrier))
    await asyncio.sleep(0)
    assert not waiting.done()
    broker.release.set()
    await asyncio.wait_for(waiting, 5)  # every change before the barrier acknowledged
    assert broker.last() == dict(newest.members())
    sender.cancel()
    await asyncio.gather(sender, return_exceptions=True)


async def test_a_member_that_failed_makes_the_family_owed_whole_again() -> None:
    store, broker = RetainedStore(_refused), Broker(fail="ha/garage/b/config")
    family = configs()
    store.put_family(family)
    barrier = store.barrier()
    sender = asyncio.create_task(store.send(broker, 5.0))  # type: ignore[arg-type]
    done, _ = await asyncio.wait({sender}, timeout=5)
    assert done
    assert isinstance(sender.exception(), aiomqtt.MqttError)
    assert store.backlog == 3  # owed whole again, as after any connection lost
    store.owe_everything()  # the next connection
    sender = asyncio.create_task(store.send(broker, 5.0))  # type: ignore[arg-type]
    await asyncio.wait_for(store.settled(barrier), 5)
    assert broker.last() == dict(family.members())
    sender.cancel()
    await asyncio.gather(sender, return_exceptions=True)


async def test_a_member_the_family_lost_keeps_its_payload_until_cleared() -> None:
    store, broker = RetainedStore(_refused), Broker()
    store.put_family(configs())
    await drained(store, broker)
    fewer = Configs("garage", {t: p for t, p in configs().members() if "/c/" not in t})
    store.put_family(fewer)
    assert store.retained["ha/garage/c/config"] == b'{"v": "c"}'  # no longer built
    store.put("ha/garage/c/config", b"")  # the caller clears what the charger lacks
    await drained(store, broker)
    assert broker.got[-1] == ("ha/garage/c/config", b"")
    assert "ha/garage/c/config" not in store.retained
    again = configs()  # and back: a member again, not a topic of its own
    store.put_family(again)
    await drained(store, broker)
    assert broker.got[-1] == ("ha/garage/c/config", b'{"v": "c"}')
    assert list(store.retained) == [again.key]


async def test_a_family_is_built_only_to_be_sent_or_compared() -> None:
    store, broker, family = RetainedStore(_refused), Broker(), configs()
    store.put_family(family)
    assert family.built == 0  # owed whole: built when taken
    await drained(store, broker)
    assert family.built == 3
    store.put_family(configs())  # equal: not built to compare
    assert family.built == 3


async def test_changed_again_after_a_reconnect_no_older_value_comes_last() -> None:
    store, broker = RetainedStore(_refused), Broker(hold=True)
    store.put_family(configs())
    sender = asyncio.create_task(store.send(broker, 5.0))  # type: ignore[arg-type]
    await asyncio.sleep(0)  # all three on their way
    store.put_family(configs(a='{"v": "A1"}'))  # a changes on its own
    sender.cancel()  # the connection is lost
    await asyncio.gather(sender, return_exceptions=True)
    store.owe_everything()  # reconnected: everything owed again
    newest = configs(a='{"v": "A2"}')
    store.put_family(newest)  # and a changes again before anything went out
    broker.release.set()
    await drained(store, broker)
    assert broker.last() == dict(newest.members())
