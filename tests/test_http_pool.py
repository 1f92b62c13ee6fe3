"""The HTTP pool: connections outlive the longest poll gap, and are counted."""

from __future__ import annotations

import asyncio.sslproto

from goe2mqtt.config import parse_settings
from goe2mqtt.http_pool import TLS_READ_BUFFER, http_session, keepalive_for

from .conftest import RunningBridge, Setup, until


def chargers(**overrides: float) -> list[object]:
    charger = {"name": "a", "serial": "012345", "token": "t-1", **overrides}
    raw = {"mqtt": {"host": "127.0.0.1"}, "chargers": [charger]}
    return list(parse_settings(raw).chargers)


def test_keepalive_outlasts_the_longest_gap_a_config_allows() -> None:
    # Defaults: scan 10 s, idle 30 s, backoff up to 3x scan: 30 s + 15 s margin.
    assert keepalive_for(chargers()) == 45  # type: ignore[arg-type]
    assert keepalive_for(chargers(scan_interval=60)) == 195  # type: ignore[arg-type]
    assert keepalive_for(chargers(idle_scan_interval=3600)) == 900  # type: ignore[arg-type]


async def test_tls_read_buffers_are_cut_to_what_a_record_needs() -> None:
    session, _ = http_session([], {})
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


def test_a_big_fleet_starts_no_faster_than_its_handshakes_allow() -> None:
    from goe2mqtt.bridge import MAX_START_RATE, start_spread

    assert start_spread(1, 10) == 1 / 50  # one charger: at once
    assert start_spread(1000, 10) == 10  # within one scan interval, as before
    assert start_spread(10_000, 10) == 10_000 / MAX_START_RATE  # 50 s, not 1000 handshakes/s


async def test_the_dns_cache_holds_every_chargers_host() -> None:
    fleet = chargers() * 5000
    session, _ = http_session(fleet, {})  # type: ignore[arg-type]
    try:
        cache = session.connector._cached_hosts  # type: ignore[union-attr]
        assert cache._max_size >= 5000
    finally:
        await session.close()
