"""A pushing charger's states at most every MIN_INTERVAL, the latest never lost
(issue 27, item 13): ChargerOutput with a recording publisher."""

from __future__ import annotations

import asyncio
from collections.abc import Iterable
from typing import Any

from goe2mqtt.charger.publish import ChargerOutput
from goe2mqtt.mqtt.families import LiveFamily
from goe2mqtt.mqtt.topics import Topics

TOPICS = Topics("goe2mqtt")
AMP = TOPICS.state("garage", "charging_current")


class Publisher:
    def __init__(self) -> None:
        self.sent: list[tuple[str, str]] = []

    async def publish_retained(
        self, topic: str, payload: str | bytes, *, vouches: Iterable[str] = ()
    ) -> None:
        self.sent.append((topic, payload if isinstance(payload, str) else payload.decode()))

    async def publish_members(self, family: LiveFamily, topics: Iterable[str]) -> None:
        for topic in topics:
            payload = family.member(topic)
            assert payload is not None
            await self.publish_retained(topic, payload)

    def on(self, topic: str) -> list[str]:
        return [payload for sent_to, payload in self.sent if sent_to == topic]


def _output(publisher: Publisher, interval: float) -> ChargerOutput:
    return ChargerOutput(
        "garage", publisher, topics=TOPICS, discovery_prefix=None, leaf_topics=True,
        on_facts=lambda facts: None, min_interval=interval,
    )  # fmt: skip


def _status(amp: int, **more: Any) -> dict[str, Any]:
    return {"amp": amp, "alw": True, "car": 2, **more}


async def test_pushed_changes_within_the_interval_are_held_and_merged() -> None:
    publisher = Publisher()
    out = _output(publisher, interval=3600)  # the timer never fires in this test
    assert await out.take(_status(10), None, "012345", merge=True)  # the first: at once
    for amp in range(11, 20):
        assert await out.take(_status(amp), {"amp"}, "012345", merge=True) == []
    car = _status(19, car=1)
    assert await out.take(car, {"car"}, "012345", merge=True) == []
    assert publisher.on(AMP) == ["10"]
    # A read-back shows what waits at once, both keys that changed meanwhile.
    assert set(await out.flush()) >= {"charging_current", "car_status"}
    assert publisher.on(AMP) == ["10", "19"]
    assert await out.flush() == []
    out.stop()


async def test_a_poll_is_never_held_and_takes_what_waited_along() -> None:
    publisher = Publisher()
    out = _output(publisher, interval=3600)
    await out.take(_status(10), None, "012345", merge=True)
    await out.take(_status(11), {"amp"}, "012345", merge=True)  # held
    await out.take(_status(11, car=1), {"car"}, "012345")  # a poll's answer: at once
    assert publisher.on(AMP) == ["10", "11"]
    assert publisher.on(TOPICS.state("garage", "car_status"))[-1] == "idle"
    out.stop()


async def test_the_last_value_of_a_burst_goes_out_when_the_interval_is_over() -> None:
    publisher = Publisher()
    out = _output(publisher, interval=0.05)
    for amp in range(10, 30):
        await out.take(_status(amp), {"amp"} if amp > 10 else None, "012345", merge=True)
    assert publisher.on(AMP) == ["10"]
    async with asyncio.timeout(10):
        while publisher.on(AMP)[-1] != "29":  # noqa: ASYNC110 - the timer's own task
            await asyncio.sleep(0.01)
    assert publisher.on(AMP) == ["10", "29"]
    out.stop()
