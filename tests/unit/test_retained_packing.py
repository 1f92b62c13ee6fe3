"""Retained payloads are compressed once they stay unchanged, not at every change."""

from __future__ import annotations

import asyncio
import json
import zlib
from typing import Any

import aiomqtt
import pytest

from goe2mqtt.mqtt import packing
from goe2mqtt.mqtt.packing import PACK_AFTER, Packed, Packing
from goe2mqtt.mqtt.retained import RetainedStore


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


class Broker:
    """Takes every publish (or, with ``fail``, holds it until released and refuses it)."""

    def __init__(self, *, fail: bool = False) -> None:
        self.fail = fail
        self.got: list[tuple[str, bytes]] = []
        self.release = asyncio.Event()
        self.holding = asyncio.Event()

    async def publish(self, topic: str, payload: bytes, **_: Any) -> None:
        if self.fail:
            self.holding.set()
            await self.release.wait()
            raise aiomqtt.MqttError("the connection ended")
        self.got.append((topic, payload))


def _refused(exc: Exception) -> None:
    raise AssertionError(exc)


def state(n: int) -> bytes:
    """A charger's JSON state, ~3 KB, the n-th version of it."""
    values = {f"entity_{i}": f"value {i}" for i in range(150)}
    return json.dumps({**values, "power": n}, sort_keys=True).encode()


@pytest.fixture
def compressions(monkeypatch: pytest.MonkeyPatch) -> list[int]:
    calls: list[int] = []
    real = zlib.compress

    def counted(data: bytes, *args: Any) -> bytes:
        calls.append(len(data))
        return real(data, *args)

    monkeypatch.setattr(zlib, "compress", counted)
    return calls


async def send_all(store: RetainedStore, broker: Broker) -> None:
    sender = asyncio.create_task(store.send(broker, 5.0))  # type: ignore[arg-type]
    await asyncio.wait_for(store.settled(store.barrier()), 5)
    sender.cancel()
    await asyncio.gather(sender, return_exceptions=True)


async def test_a_state_that_changes_every_second_is_never_compressed(
    compressions: list[int],
) -> None:
    """Compressed at every change, it was ~0.1 ms of CPU per change: a quarter of a
    10 000-charger restart's CPU."""
    clock = Clock()
    store = RetainedStore(_refused, Packing(clock))
    broker = Broker()
    for n in range(int(4 * PACK_AFTER)):
        store.put("c/state", state(n))
        await send_all(store, broker)
        clock.now += 1.0
    assert compressions == []
    assert broker.got[-1] == ("c/state", state(int(4 * PACK_AFTER) - 1))


async def test_a_quiet_state_is_kept_compressed_and_sent_whole(compressions: list[int]) -> None:
    clock = Clock()
    store = RetainedStore(_refused, Packing(clock))
    broker = Broker()
    store.put("quiet/state", state(1))
    store.put("small", b"online")
    await send_all(store, broker)
    for _ in range(3):  # the sweeps come with any change, or the sender's idle look
        clock.now += PACK_AFTER
        store.put("busy/state", state(int(clock.now)))
    assert isinstance(store.retained["quiet/state"], Packed)
    assert len(store.retained["quiet/state"]) < len(state(1)) / 2
    assert not isinstance(store.retained["busy/state"], Packed)  # changed just now
    assert store.retained["small"] == b"online"  # too small to be worth it
    assert len(compressions) == 1
    # The same value again owes nothing; another one is owed, and a reconnect sends
    # the compressed one as it came.
    store.put("quiet/state", state(1))
    assert "quiet/state" not in store._dirty
    store.owe_everything()
    broker.got.clear()
    await send_all(store, broker)
    assert ("quiet/state", state(1)) in broker.got
    store.put("quiet/state", state(2))
    assert "quiet/state" in store._dirty


async def test_a_state_compressed_while_its_publish_fails_is_owed_again() -> None:
    clock = Clock()
    store = RetainedStore(_refused, Packing(clock))
    store.put("c/state", state(1))
    failing = Broker(fail=True)
    sender = asyncio.create_task(store.send(failing, 5.0))  # type: ignore[arg-type]
    await asyncio.wait_for(failing.holding.wait(), 5)
    for _ in range(2):  # meanwhile it stayed unchanged two intervals: compressed
        clock.now += PACK_AFTER
        store.put("other", str(clock.now).encode())  # any change looks
    assert isinstance(store.retained["c/state"], Packed)
    failing.release.set()
    with pytest.raises(aiomqtt.MqttError):
        await asyncio.wait_for(sender, 5)
    broker = Broker()
    await send_all(store, broker)
    assert ("c/state", state(1)) in broker.got


def test_packed_and_unpacked_payloads_compare_by_what_they_say() -> None:
    raw = state(7)
    packed = Packed(zlib.compress(raw, 6))
    assert packing.same(packed, raw)
    assert packing.same(raw, packed)
    assert packing.same(packed, Packed(zlib.compress(raw, 6)))
    assert not packing.same(packed, state(8))
    assert packing.unpack(packed) == raw
