"""The HTTP pool: connections outlive the longest poll gap, and are counted."""

from __future__ import annotations

import asyncio.sslproto

from goe2mqtt.charger.schedule import MAX_BACKOFF_FACTOR
from goe2mqtt.config.settings import parse_settings
from goe2mqtt.goe.pool import KEEPALIVE, TLS_READ_BUFFER, http_session

from ..conftest import MqttProbe, RunningBridge, Setup, until


def chargers(**overrides: float) -> list[object]:
    charger = {"name": "a", "serial": "012345", "token": "t-1", **overrides}
    raw = {"mqtt": {"host": "127.0.0.1"}, "chargers": [charger]}
    return list(parse_settings(raw).chargers)


async def test_idle_connections_outlast_every_poll_gap_under_15_minutes() -> None:
    # The longest gaps a charger's polls leave: idle, and failing (backoff), for the
    # defaults and for slow configurations just under 15 minutes.
    for settings in (chargers(), chargers(scan_interval=299), chargers(idle_scan_interval=899)):
        charger = settings[0]
        gaps = (charger.idle_interval, charger.scan_interval * MAX_BACKOFF_FACTOR)  # type: ignore[attr-defined]
        assert max(gaps) < KEEPALIVE
    session, _ = http_session(len(chargers()), {})
    try:
        # What the pool really uses (aiohttp's default is 15 s: every idle poll would
        # pay a handshake), and its sweep of idle connections as rare as that.
        assert session.connector._keepalive_timeout == KEEPALIVE  # type: ignore[union-attr]
    finally:
        await session.close()


async def test_tls_read_buffers_are_cut_to_what_a_record_needs() -> None:
    session, _ = http_session(0, {})
    await session.close()
    assert asyncio.sslproto.SSLProtocol.max_size == TLS_READ_BUFFER
    assert TLS_READ_BUFFER >= 8 * 1024  # a status answer (~4 KiB) in one read


async def test_bridge_info_counts_requests_and_new_connections(
    setup: Setup, bridge: RunningBridge
) -> None:
    charger = bridge.bridge.chargers["garage"]
    for _ in range(5):
        assert await charger.refresh()
    await until(lambda: bridge.bridge.info()["http"]["requests"] >= 6, "requests counted")
    http = bridge.bridge.info()["http"]
    # One charger, one connection, reused for every poll (the local API has its own host
    # per charger too: one each).
    assert http["new_connections"] <= 2
    assert http["new_connections_per_1000_requests"] < 400


async def test_connections_the_far_end_closed_are_replaced_not_failed(
    setup: Setup, probe: MqttProbe, bridge: RunningBridge
) -> None:
    # The bridge keeps idle connections 15 min; a cloud with a shorter idle timeout
    # closes them first. The next poll and the next command must just connect anew.
    charger = bridge.bridge.chargers["garage"]
    assert await charger.refresh()
    before = bridge.bridge.info()["http"]["new_connections"]
    assert setup.simulator.drop_connections() >= 1
    await asyncio.sleep(0.1)  # the FIN reaches the client
    assert await charger.refresh()
    assert charger.availability.failures == 0
    result = await probe.command(setup.cmd("garage", "change_charging_power"), "11")
    assert result["ok"] is True, result
    assert setup.charger("garage").amp == 11
    assert bridge.bridge.info()["http"]["new_connections"] > before
    await probe.wait_text(setup.topics.availability("garage"), "online")


def test_a_big_fleet_starts_no_faster_than_its_handshakes_allow() -> None:
    from goe2mqtt.bridge.startup import MAX_START_RATE, start_spread

    assert start_spread(1, 10) == 1 / 50  # one charger: at once
    assert start_spread(1000, 10) == 10  # within one scan interval, as before
    assert start_spread(10_000, 10) == 10_000 / MAX_START_RATE  # 50 s, not 1000 handshakes/s


async def test_the_dns_cache_holds_every_chargers_host() -> None:
    fleet = chargers() * 5000
    session, _ = http_session(len(fleet), {})
    try:
        cache = session.connector._cached_hosts  # type: ignore[union-attr]
        assert cache._max_size >= 5000
    finally:
        await session.close()
