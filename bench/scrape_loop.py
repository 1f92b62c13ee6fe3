"""Benchmark: what making /metrics for N chargers costs the event loop beside it.

Not a test: it prints figures. In one process, no network but socket pairs:
ping-pongs on the event loop (one byte each way, as a poll's request and answer are;
50 side by side, as many polls are at a time) count their round trips and the longest
one while the text for N chargers is made: not at all (1 s of the loop alone), in a
worker thread in one go (metrics.exposition, as /metrics was made before web.scrape),
and by web.scrape on the loop (a scrape after a first one, every charger's age moved).
"Loop time taken" is the text's wall time less the share of it in which the ping-pongs
went at their unhindered rate: what the polls would have lost. The thread competes with
the loop for the interpreter lock at every socket call the loop makes.

    python bench/scrape_loop.py [--chargers 10000] [--rounds 3] [--pairs 50]
"""

from __future__ import annotations

import argparse
import asyncio
import socket
import sys
import time
from pathlib import Path
from types import SimpleNamespace
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from poll_fleet import serials

from goe2mqtt.web.metrics import exposition, take_snapshot
from goe2mqtt.web.scrape import Scraper
from goe2mqtt.web.view import ChargerRow, DurationCounts


def fleet(n: int) -> Any:
    now = time.time()
    rows = [
        ChargerRow(name=f"c{serial}", online=True, offline_reason="", connection="polling",
                   model="go-eCharger_V4", firmware="60.4", last_update=now, car_state=2,
                   power_watts=11040.0, currents=(16.0, 16.0, 16.0), energy_total_kwh=1234.5,
                   temperature=30.0, polls={"ok": 100}, reconnects=0)
        for serial in serials(n)
    ]  # fmt: skip
    return SimpleNamespace(  # what metrics and web.scrape read of a bridge
        version="bench", mqtt_connected=True, mqtt_disconnects={}, journal_error=None,
        results_pending=0, loop_lag=0.0, rows=lambda: rows, command_outcomes=dict,
        command_durations=lambda: DurationCounts((), {}, {}),
    )  # fmt: skip


async def ping_pong(stop: asyncio.Event) -> tuple[int, float]:
    a, b = socket.socketpair()
    reader_a, writer_a = await asyncio.open_connection(sock=a)
    reader_b, writer_b = await asyncio.open_connection(sock=b)
    trips, longest = 0, 0.0
    while not stop.is_set():
        started = time.perf_counter()
        writer_a.write(b"?")
        await reader_b.readexactly(1)
        writer_b.write(b"!")
        await reader_a.readexactly(1)
        longest = max(longest, time.perf_counter() - started)
        trips += 1
    writer_a.close()
    writer_b.close()
    return trips, longest


async def trial(how: str, look: Any, scraper: Scraper, pairs: int) -> tuple[float, int, float]:
    stop = asyncio.Event()
    pinging = asyncio.gather(*(ping_pong(stop) for _ in range(pairs)))
    started = time.perf_counter()
    if how == "thread":
        await asyncio.to_thread(lambda: exposition(take_snapshot(look, "all"), "all"))
    elif how == "web.scrape":
        await scraper.exposition(look)
    else:
        await asyncio.sleep(1.0)
    wall = time.perf_counter() - started
    stop.set()
    figures = await pinging
    return wall, sum(f[0] for f in figures), max(f[1] for f in figures)


async def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--chargers", type=int, default=10_000)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--pairs", type=int, default=50, help="ping-pongs side by side")
    args = parser.parse_args()
    look = fleet(args.chargers)
    scraper = Scraper("all")
    await scraper.exposition(look)  # the first one: every line written and kept
    for _ in range(args.rounds):
        wall, trips, longest = await trial("none", look, scraper, args.pairs)
        alone = trips / wall
        print(f"{'no text':10}  round trips {alone:6.0f}/s  longest {longest * 1000:5.1f} ms")
        for how in ("thread", "web.scrape"):
            wall, trips, longest = await trial(how, look, scraper, args.pairs)
            taken = wall - trips / alone
            print(
                f"{how:10}  round trips {trips / wall:6.0f}/s  longest {longest * 1000:5.1f} ms"
                f"  text's wall {wall * 1000:5.0f} ms  loop time taken {taken * 1000:5.0f} ms"
            )


if __name__ == "__main__":
    asyncio.run(main())
