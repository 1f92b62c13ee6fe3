"""The live streams' one clock (web.streams.Ticks): streams of one page make its rows
once a tick between them, and the clock stops when no stream waits."""

from __future__ import annotations

import asyncio
from collections.abc import Mapping, Sequence
from typing import Any

from goe2mqtt.web.cells import Selection
from goe2mqtt.web.live import ChargerStream, FleetStream
from goe2mqtt.web.streams import StreamSlots, Ticks
from goe2mqtt.web.view import ChargerRow

from ..conftest import WAIT


class Look:
    """A fleet of 200 and the bridge's header facts; counts the rows it made."""

    version = "9.9"
    started = 0.0
    mqtt_connected = True
    journal_error = None
    results_pending = 0
    loop_lag = 0.0

    def __init__(self) -> None:
        self.power = 0.0
        self.rows_made = 0

    def names(self) -> Sequence[str]:
        return [f"c{i:03d}" for i in range(200)]

    def states(self, name: str) -> Mapping[str, Any]:
        return {}

    def history(self, name: str, limit: int) -> list[Any]:
        return []

    def row(self, name: str) -> ChargerRow | None:
        self.rows_made += 1
        return ChargerRow(name=name, online=True, offline_reason="", connection="polling",
                          power_watts=self.power)  # fmt: skip


def test_streams_of_one_page_make_its_rows_once_a_tick() -> None:
    look, slots, ticks = Look(), StreamSlots(64), Ticks(1.0)
    streams = [FleetStream(look, slots, ticks, Selection()) for _ in range(64)]  # type: ignore[arg-type]
    firsts = [stream.news() for stream in streams]
    assert look.rows_made == 50  # one page of 50, not 64 of them
    assert all(len(first["rows"]) == 50 for first in firsts)
    look.power = 11_000.0
    assert all(stream.news() == {} for stream in streams)  # the same tick: the same look
    ticks.tick()
    news = [stream.news() for stream in streams]
    assert look.rows_made == 100
    assert all(event["rows"]["c000"] == {"power": "11000 W"} for event in news)
    other = FleetStream(look, slots, ticks, Selection(page=2))  # type: ignore[arg-type]
    other.news()
    assert look.rows_made == 150  # another page is its own


def test_a_chargers_stream_sees_the_header_made_this_tick() -> None:
    look, slots, ticks = Look(), StreamSlots(64), Ticks(1.0)
    fleet = FleetStream(look, slots, ticks, Selection())  # type: ignore[arg-type]
    one = ChargerStream(look, slots, ticks, "c001")  # type: ignore[arg-type]
    assert fleet.news()["header"] == one.news()["header"]


async def test_the_clock_wakes_every_waiting_stream_and_stops_when_none_waits() -> None:
    ticks = Ticks(0.001)
    waiting = [asyncio.create_task(ticks.next()) for _ in range(5)]
    await asyncio.wait_for(asyncio.gather(*waiting), WAIT)

    async def stopped() -> None:
        while ticks._runner is not None:  # noqa: ASYNC110 - the clock's own task
            await asyncio.sleep(0.001)

    await asyncio.wait_for(stopped(), WAIT)
    await asyncio.wait_for(ticks.next(), WAIT)  # a stream that comes later starts it again
    await ticks.stop()
