"""Stopping must stop: a shutdown that hangs leaves the broker thinking we are online."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator, Iterable

import aiohttp
import pytest

from goe2mqtt.bridge.fleet import stop_pollers
from goe2mqtt.charger.loop import Charger
from goe2mqtt.config.settings import parse_settings
from goe2mqtt.goe.client import GoeClient
from goe2mqtt.mqtt.families import Family, LiveFamily
from goe2mqtt.mqtt.topics import Topics
from goe2mqtt.sim.simulator import Simulator
from goe2mqtt.util.aio import Alarm, wait_until_set

from ..conftest import SERIALS, TOKEN, until


class CancelSwallowingPublisher:
    """Publishes the way aiomqtt can on Python 3.11: asyncio.wait_for returns the finished
    result and drops a cancel that arrived at the same moment."""

    def __init__(self) -> None:
        self.published = 0
        self.swallowed = 0
        self.inside = asyncio.Event()

    async def publish_retained(
        self, topic: str, payload: str | bytes, *, vouches: Iterable[str] = ()
    ) -> None:
        self.published += 1
        self.inside.set()
        try:
            await asyncio.sleep(0.002)
        except asyncio.CancelledError:
            self.swallowed += 1
        finally:
            self.inside.clear()

    async def publish(self, topic: str, payload: str | bytes, *, qos: int = 1) -> bool:
        return True

    async def publish_family(self, family: Family) -> None:
        for topic, payload in family.members():
            await self.publish_retained(topic, payload)

    async def publish_members(self, family: LiveFamily, topics: Iterable[str]) -> None:
        for topic in topics:
            await self.publish_retained(topic, family.member(topic) or b"")


@pytest.fixture
async def http() -> AsyncIterator[aiohttp.ClientSession]:
    async with aiohttp.ClientSession() as session:
        yield session


async def test_pollers_stop_even_when_a_library_swallows_the_cancel(
    simulator: Simulator, http: aiohttp.ClientSession
) -> None:
    raw = {
        "mqtt": {"host": "127.0.0.1"},
        "chargers": [
            {
                "name": "garage",
                "serial": SERIALS["garage"],
                "token": TOKEN,
                "api_url": simulator.url_for(SERIALS["garage"]),
                "scan_interval": 0.01,
            }
        ],
    }
    settings = parse_settings(raw).chargers[0]
    publisher = CancelSwallowingPublisher()
    charger = Charger(
        settings,
        GoeClient(http, settings.base_url, TOKEN),
        publisher,
        topics=Topics("goe2mqtt"),
        discovery_prefix="homeassistant",
    )
    task = asyncio.create_task(charger.run())
    await publisher.inside.wait()
    task.cancel()  # lands inside a publish and is swallowed there
    published = publisher.published
    await until(lambda: publisher.published > published + 40, "polling going on")
    assert publisher.swallowed == 1
    assert not task.done()  # so cancelling alone did not stop it

    await asyncio.wait_for(stop_pollers([charger], [task]), 5)
    assert task.done()


async def test_wait_until_set_reports_set_and_timeout() -> None:
    event = asyncio.Event()
    assert await wait_until_set(event, 0.01) is False
    event.set()
    assert await wait_until_set(event, 1) is True


async def test_wait_until_set_passes_a_cancel_through() -> None:
    task = asyncio.create_task(wait_until_set(asyncio.Event(), 10))
    await asyncio.sleep(0.01)
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task


def test_an_alarm_wakes_its_sleeper_when_set_and_otherwise_times_out() -> None:
    async def scenario() -> list[object]:
        alarm, seen = Alarm(), []
        seen.append(await alarm.wait(0.05))  # nobody sets it: False after the timeout
        loop = asyncio.get_running_loop()
        loop.call_later(0.05, alarm.set)
        started = loop.time()
        seen.append(await alarm.wait(30))  # set long before the timeout
        seen.append(loop.time() - started < 10)
        seen.append(await alarm.wait(30))  # still set: at once
        alarm.clear()
        first = alarm.wait(30)
        second = alarm.wait(0.05)  # one sleeper: the earlier wait ends with False
        seen.append(await first)
        seen.append(await second)
        return seen

    assert asyncio.run(scenario()) == [False, True, True, True, False, False]


def test_an_alarm_waited_on_without_a_timeout_keeps_no_timer_and_wakes_when_set() -> None:
    """A pushing charger's poll loop sleeps so until its connection goes down: 10 000 of
    them kept 10 000 timers in the loop's heap, each firing every scan_interval."""

    async def scenario() -> tuple[int, int, bool]:
        loop = asyncio.get_running_loop()
        alarm = Alarm()
        before = len(loop._scheduled)  # type: ignore[attr-defined]
        sleeper = asyncio.ensure_future(alarm.wait(None))
        await asyncio.sleep(0)
        during = len(loop._scheduled)  # type: ignore[attr-defined]
        loop.call_soon(alarm.set)
        return before, during, await sleeper

    before, during, woken = asyncio.run(scenario())
    assert during == before
    assert woken


def test_a_cancelled_alarm_sleeper_is_cancelled_not_woken() -> None:
    async def scenario() -> bool:
        alarm = Alarm()

        async def sleep() -> bool:
            return await alarm.wait(0.05)

        sleeper = asyncio.create_task(sleep())
        await asyncio.sleep(0)
        sleeper.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await sleeper
        await asyncio.sleep(0.1)  # its timer fires on a cancelled future: no error
        alarm.set()
        return sleeper.cancelled()

    assert asyncio.run(scenario())
