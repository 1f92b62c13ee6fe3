"""The PV feed's confirmation when the charger shows a write before the write's answer.

A pushing charger applies `ids` and may push the delta that shows it (pgrid) before the
bridge has read the answer to the write; the delta carries pgrid only once, as it changed.
"""

from __future__ import annotations

import asyncio

from goe2mqtt.charger.pv_feed import PvFeed
from tests.conftest import until


async def test_a_write_shown_before_its_answer_is_confirmed() -> None:
    states: list[str] = []
    feed: PvFeed

    async def send(reading: dict[str, float]) -> None:
        # The delta that shows the write comes in while the write's answer is awaited.
        feed.observe({"pgrid": reading["pGrid"], "ppv": None, "pakku": None})
        await asyncio.sleep(0)

    feed = PvFeed("garage", send, lambda: states.append(feed.state), interval=5.0)
    assert feed.offer("pv_grid", b"-900", retained=False) is None
    task = asyncio.create_task(feed.run())
    try:
        await until(lambda: feed.writes == 1, "the write answered")
    finally:
        feed.stop()
        await task
    # Shown once, never again (nothing else changes): the write stays confirmed.
    assert feed.state == "confirmed", states
