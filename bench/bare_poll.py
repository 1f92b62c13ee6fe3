"""The limit for bench/bench.py: fetch the statuses and do nothing else.

Same HTTP client, same concurrency limit, same filter, same schedule as goe2mqtt,
but no mapping, no MQTT. Run by bench.py: bare_poll.py URLS.json TOKEN SCAN_INTERVAL [KEEPALIVE]
"""

from __future__ import annotations

import asyncio
import json
import random
import sys
from pathlib import Path

import aiohttp

from goe2mqtt.catalogue import STATUS_KEYS

START_RATE = 50.0  # as goe2mqtt spreads its first polls


async def poll_forever(session: aiohttp.ClientSession, url: str, token: str, scan: float,
                       start_within: float) -> None:  # fmt: skip
    params = {"filter": ",".join(sorted(STATUS_KEYS))}
    headers = {"Authorization": f"Bearer {token}"}
    await asyncio.sleep(random.uniform(0, min(scan, start_within)))
    while True:
        async with session.get(f"{url}/api/status", params=params, headers=headers) as response:
            json.loads(await response.read())
        await asyncio.sleep(scan)


async def main() -> None:
    # URLS.json: a list (every charger at SCAN_INTERVAL) or {url: its interval}.
    urls = json.loads(Path(sys.argv[1]).read_text())
    token, scan = sys.argv[2], float(sys.argv[3])
    keepalive = float(sys.argv[4]) if len(sys.argv) > 4 else 15.0  # aiohttp's default
    intervals = urls if isinstance(urls, dict) else dict.fromkeys(urls, scan)
    connector = aiohttp.TCPConnector(limit=0, ttl_dns_cache=300, keepalive_timeout=keepalive)
    async with aiohttp.ClientSession(connector=connector) as session:
        await asyncio.gather(
            *(poll_forever(session, url, token, every, len(intervals) / START_RATE)
              for url, every in intervals.items())
        )  # fmt: skip


if __name__ == "__main__":
    asyncio.run(main())
