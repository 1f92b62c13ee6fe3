"""Polite polling: what changes every poll, settings and facts every config_interval,
after a write and after a restart; long local filters asked in parts."""

from __future__ import annotations

import aiohttp

from goe2mqtt.catalogue import LIVE_KEYS, SETTLED_KEYS, STATUS_KEYS
from goe2mqtt.charger.loop import Charger
from goe2mqtt.goe.client import LOCAL_FILTER_LENGTH, GoeClient, filter_parts
from goe2mqtt.sim.simulator import SimulatedCharger, Simulator
from tests.conftest import SERIALS, RecordingPublisher


def test_the_catalogue_says_what_changes_and_what_is_settled() -> None:
    assert {"car", "amp", "frc", "nrg", "eto", "tma", "err", "trx", "sse"} <= LIVE_KEYS
    assert {"ama", "fwv", "fna", "c0n", "lbr", "typ"} <= SETTLED_KEYS
    assert LIVE_KEYS | SETTLED_KEYS == STATUS_KEYS
    assert not LIVE_KEYS & SETTLED_KEYS


def test_filter_parts_stay_under_the_length_and_keep_every_key() -> None:
    parts = filter_parts(STATUS_KEYS, LOCAL_FILTER_LENGTH)
    assert len(parts) > 1
    assert all(len(part) <= LOCAL_FILTER_LENGTH for part in parts)
    assert sorted(",".join(parts).split(",")) == sorted(STATUS_KEYS)
    assert filter_parts(["b", "a"], None) == ["a,b"]


async def test_settings_are_read_at_start_after_a_write_and_after_a_restart(
    polled_charger: tuple[Charger, SimulatedCharger, RecordingPublisher],
) -> None:
    bridge, simulated, publisher = polled_charger
    assert await bridge.refresh()
    assert set((simulated.last_filter or "").split(",")) == LIVE_KEYS
    simulated.ama = 20  # changed in the app: seen at the next full read
    assert await bridge.refresh()
    assert bridge.status["ama"] == 32
    bridge.poll_soon(60.0)  # what a command does when it ends
    assert await bridge.refresh()
    assert bridge.status["ama"] == 20
    assert await bridge.refresh()
    assert "ama" not in (simulated.last_filter or "")
    simulated.reboots += 1  # a restart (perhaps new firmware): read everything at once
    asked = simulated.status_calls
    assert await bridge.refresh()
    assert simulated.status_calls == asked + 2  # the live keys, then every key
    assert "fwv" in (simulated.last_filter or "")
    assert publisher.retained  # and it all went out


async def test_a_local_charger_is_asked_in_parts() -> None:
    simulated = SimulatedCharger(SERIALS["garage"])
    sim = Simulator([simulated])
    await sim.start()
    host = await sim.serve_local(simulated.serial)
    try:
        async with aiohttp.ClientSession() as http:
            client = GoeClient(http, f"http://{host}", None, local=True)
            status = await client.status(STATUS_KEYS)
        assert simulated.status_calls == len(filter_parts(STATUS_KEYS, LOCAL_FILTER_LENGTH))
        assert status.keys() == simulated.status(STATUS_KEYS).keys()
    finally:
        await sim.stop()
