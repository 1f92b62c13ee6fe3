"""The PV feed: readings in, ids written and kept alive, confirmed by what the charger shows.

Through one Charger and the simulator over HTTP; the MQTT path (and its
rejections on the result topic) is in test_bridge's PV test and the real HA test.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator

import pytest
import structlog.testing

from goe2mqtt.charger.loop import Charger
from goe2mqtt.sim.simulator import Faults, SimulatedCharger
from tests.conftest import RecordingPublisher, until

Setup = tuple[Charger, SimulatedCharger, RecordingPublisher]
INTERVAL = 0.3
TIMEOUT = 1.5


@pytest.fixture
async def feeding(polled_charger: Setup) -> AsyncIterator[Setup]:
    bridge, _, _ = polled_charger
    bridge.pv_feed.interval, bridge.pv_feed.timeout = INTERVAL, TIMEOUT
    task = asyncio.create_task(bridge.pv_feed.run())
    yield polled_charger
    bridge.pv_feed.stop()
    await task


def ids_writes(simulated: SimulatedCharger) -> list[dict[str, float]]:
    return [call["ids"] for call in simulated.set_calls if "ids" in call]


def offer(charger: Charger, service: str, payload: str, retained: bool = False) -> str | None:
    return charger.pv_feed.offer(service, payload.encode(), retained=retained)


async def test_a_reading_is_written_kept_alive_confirmed_and_stopped_when_quiet(
    feeding: Setup,
) -> None:
    bridge, simulated, publisher = feeding
    with structlog.testing.capture_logs() as logs:
        assert offer(bridge, "pv_feed", '{"pGrid": -1200, "pPv": 3400, "pAkku": 0}') is None
        await until(lambda: ids_writes(simulated), within=3)
        assert ids_writes(simulated)[0] == {"pGrid": -1200.0, "pPv": 3400.0, "pAkku": 0.0}
        assert bridge.pv_feed.state == "sending"

        assert await bridge.refresh()  # the charger shows what it got: confirmed
        assert simulated.status()["pgrid"] == -1200.0
        assert bridge.pv_feed.state == "confirmed"
        await until(lambda: publisher.retained.get("goe2mqtt/garage/pv_feed") == b"confirmed")
        assert publisher.retained["goe2mqtt/garage/pv_feed_grid_power"] == b"-1200"

        # Written again while the source keeps talking (the charger forgets ids).
        await until(lambda: len(ids_writes(simulated)) >= 3, within=3)

        # The source falls quiet: after the timeout the feed stops and says so.
        await until(lambda: bridge.pv_feed.state == "stale", within=TIMEOUT + 2)
        count = len(ids_writes(simulated))
        await asyncio.sleep(3 * INTERVAL)
        assert len(ids_writes(simulated)) == count
    events = [entry["event"] for entry in logs]
    assert events.count("pv_feed_started") == 1
    assert events.count("pv_feed_stale") == 1
    await until(lambda: publisher.retained.get("goe2mqtt/garage/pv_feed") == b"stale")
    assert publisher.retained["goe2mqtt/garage/pv_feed_grid_power"] == b"null"


async def test_three_plain_topics_make_one_reading_and_grid_is_needed(feeding: Setup) -> None:
    bridge, simulated, _ = feeding
    assert offer(bridge, "pv_solar", "2500") is None
    assert offer(bridge, "pv_battery", '"-300.5"') is None
    await asyncio.sleep(2 * INTERVAL)
    assert ids_writes(simulated) == []  # no grid power yet: nothing to steer by
    assert offer(bridge, "pv_grid", "-800") is None
    await until(lambda: ids_writes(simulated), within=3)
    assert ids_writes(simulated)[0] == {"pGrid": -800.0, "pPv": 2500.0, "pAkku": -300.5}
    assert offer(bridge, "pv_battery", "null") is None  # clears that field
    await until(lambda: "pAkku" not in ids_writes(simulated)[-1], within=3)
    # A changed reading goes out at once (not after a whole interval).
    assert offer(bridge, "pv_grid", "100") is None
    await until(lambda: ids_writes(simulated)[-1]["pGrid"] == 100.0, within=2 * INTERVAL + 1)


@pytest.mark.parametrize(
    ("service", "payload", "reason"),
    [
        ("pv_feed", '{"pPv": 100}', "pGrid is required"),
        ("pv_feed", '{"pGrid": 1, "pSun": 2}', "unknown field 'pSun'"),
        ("pv_feed", '{"pGrid": 1, "pPv": -5}', "pPv must be between 0 and 1000000 W"),
        ("pv_feed", '{"pGrid": 1e12}', "pGrid must be between -1000000 and 1000000 W"),
        ("pv_feed", "[1, 2]", "pv_feed takes"),
        ("pv_grid", "lots", "not a number or JSON"),
        ("pv_grid", "true", "pGrid must be a number of watts"),
        ("pv_feed", '{"pGrid": 1, "ts": 1000}', "stale"),
    ],
)
async def test_bad_readings_are_refused_with_a_reason_and_write_nothing(
    feeding: Setup, service: str, payload: str, reason: str
) -> None:
    bridge, simulated, _ = feeding
    refused = offer(bridge, service, payload)
    assert refused is not None
    assert reason in refused
    await asyncio.sleep(2 * INTERVAL)
    assert ids_writes(simulated) == []


async def test_a_retained_reading_is_refused(feeding: Setup) -> None:
    bridge, _, _ = feeding
    assert "retained" in (offer(bridge, "pv_grid", "100", retained=True) or "")


async def test_a_charger_that_ignores_ids_shows_not_applied(feeding: Setup) -> None:
    bridge, simulated, _ = feeding
    simulated.faults = Faults(drop_sets=True)  # 202, but the charger never applies it
    assert offer(bridge, "pv_grid", "-500") is None
    await until(lambda: bridge.pv_feed.writes >= 1, within=3)
    for _ in range(12):
        assert offer(bridge, "pv_grid", "-500") is None  # the source keeps talking
        assert await bridge.refresh()
        if bridge.pv_feed.state == "not_applied":
            break
        await asyncio.sleep(INTERVAL)
    assert bridge.pv_feed.state == "not_applied"


async def test_firmware_that_refuses_ids_shows_failed(feeding: Setup) -> None:
    bridge, simulated, publisher = feeding
    simulated.model_name = "legacy"  # no ids: the cloud answers 422
    assert offer(bridge, "pv_grid", "-500") is None
    await until(lambda: bridge.pv_feed.state == "failed", within=3)
    states = json.loads(publisher.retained["goe2mqtt/garage/state"])
    assert "pv_feed" in states  # announced until a poll shows the firmware lacks it
    simulated.reboots += 1  # older firmware: a restart, after which every key is read
    assert await bridge.refresh()
    assert "pv_feed" not in json.loads(publisher.retained["goe2mqtt/garage/state"])
