"""The HTTP pool to the chargers: connections kept across poll gaps, and counted.

The cloud gives every charger its own TLS host, so a connection is a charger's own:
closing it between polls costs a full TCP + TLS handshake on the next one (several
times the CPU of a reused connection). aiohttp closes idle connections after 15 s,
shorter than an idle charger's 30 s gap, so the pool here keeps them far longer (see
KEEPALIVE). Whether the cloud keeps them open too is only visible in production:
bridge/info counts new connections per 1000 requests.
"""

from __future__ import annotations

import asyncio.sslproto
import inspect
from dataclasses import dataclass
from typing import Any

import aiohttp

# Idle connections are kept 15 min: longer than every poll gap under that (a scan
# interval under 5 min, 3x while failing; an idle interval under 15 min), so a charger
# reuses its connection at every poll; longer gaps (an hourly idle poll, a long
# Retry-After) pay one handshake each. Not just longer than the longest gap: aiohttp
# sweeps all its idle connections once per keep-alive period, a hold of the event loop
# that grows with the fleet, so the period is long. A connection the cloud closed
# meanwhile is dropped when next wanted, and a new one made.
KEEPALIVE = 900.0  # s
DNS_TTL = 300  # s
# Python's asyncio gives every TLS connection a 256 KiB read buffer: the size of one
# read of decrypted data, not of a TLS record (a longer answer takes more reads). A
# status answer is ~1.3 KiB, so 8 KiB reads it at once (docs/scaling.md: the cost).
TLS_READ_BUFFER = 8 * 1024


def shrink_tls_buffers(size: int = TLS_READ_BUFFER) -> None:
    """Smaller per-connection TLS read buffers for this process (see TLS_READ_BUFFER)."""
    protocol: Any = asyncio.sslproto.SSLProtocol
    if getattr(protocol, "max_size", None) != size:
        protocol.max_size = size


@dataclass
class PoolStats:
    requests: int = 0
    new_connections: int = 0  # each one a TCP (and for the cloud a TLS) handshake

    def info(self) -> dict[str, Any]:
        per_1000 = 1000 * self.new_connections / self.requests if self.requests else None
        return {
            "requests": self.requests,
            "new_connections": self.new_connections,
            "new_connections_per_1000_requests": (None if per_1000 is None else round(per_1000, 1)),
        }


def http_session(hosts: int, headers: dict[str, str]) -> tuple[aiohttp.ClientSession, PoolStats]:
    """The session for every charger (``hosts``: how many host names they use), and
    the counters bridge/info shows."""
    shrink_tls_buffers()
    stats = PoolStats()
    tracing = aiohttp.TraceConfig()

    async def on_request_end(*_: Any) -> None:
        stats.requests += 1

    async def on_connection_created(*_: Any) -> None:
        stats.new_connections += 1

    tracing.on_request_end.append(on_request_end)
    tracing.on_connection_create_end.append(on_connection_created)
    # No pool-wide limit: each charger has at most one request open (its lock), so
    # the chargers bound the pool; a shared cap let hanging chargers starve the rest.
    options: dict[str, Any] = {}
    if "dns_cache_max_size" in inspect.signature(aiohttp.TCPConnector).parameters:
        # aiohttp keeps 1000 names by default: a fleet has one cloud host per charger,
        # and a reconnect to an evicted one resolves it again.
        options["dns_cache_max_size"] = max(1000, hosts + 16)
    connector = aiohttp.TCPConnector(
        limit=0,
        keepalive_timeout=KEEPALIVE,
        ttl_dns_cache=DNS_TTL,
        **options,
    )
    session = aiohttp.ClientSession(connector=connector, headers=headers, trace_configs=[tracing])
    return session, stats
