"""Benchmark: what the session ledger costs (issue 30, item 10).

Not a test: it prints figures. In this process, no network:

1. CPU per status with and without the ledger: N charging chargers, each status (eto
   rising, power, card) taken through what the bridge does with it - the charger's
   view and state publishing (to a publisher that only keeps the payloads) - and,
   with the ledger, first through the charger's books (their tracker, the added keys,
   the batched progress writes to a real sqlite file in a temporary folder). The
   ratio is the ledger's share of that path; the HTTP or websocket work a poll also
   costs is the same either way and not in it.
2. The database's growth per session: closed sessions written, file size / count.
3. `goe2mqtt sessions --summary month,charger` over a year of N chargers' sessions
   (one a day each), from the file, as the command line reads it.
4. A price topic's price for one reading's interval (10 s) with its history full
   (4096 changes, 15-minute prices): what every status of every charger on that topic
   costs on top (`--price-only` times only this).

    python bench/ledger.py                       # 10 000 chargers, a year
    python bench/ledger.py --chargers 1000 --days 30
"""

from __future__ import annotations

import argparse
import asyncio
import random
import resource
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # tests/

from goe2mqtt.charger.publish import ChargerOutput
from goe2mqtt.config.tariff import TariffSettings
from goe2mqtt.ledger.books import Ledger
from goe2mqtt.ledger.pricing import PRICE_HISTORY, TopicPrice
from goe2mqtt.ledger.record import Session
from goe2mqtt.ledger.report import summary
from goe2mqtt.ledger.store import SessionStore
from goe2mqtt.mqtt.topics import Topics
from goe2mqtt.util.logs import configure_logging
from tests.publisher import RecordingPublisher

YEAR_START = 1_767_225_600.0  # 2026-01-01T00:00:00Z


def status(n: int, eto: float) -> dict[str, Any]:
    power = 11_000.0 + n % 7
    return {
        "car": 2, "eto": eto, "wh": eto % 50_000, "trx": 1 + n % 3, "rbc": 7, "pnp": 3,
        "nrg": [230.0, 230.0, 230.0, 0, 16.0, 16.0, 16.0, 3680.0, 3680.0, 3680.0, 0,
                power, 100, 100, 100, 0],
        "c0n": "Alice", "c1n": "Bob", "c2n": "Eve", "amp": 16, "alw": True, "psm": 0,
        "fwv": "60.4", "typ": "go-eCharger_V4", "sse": f"{n:06d}", "modelStatus": 3,
        "acs": 0, "err": 0, "tma": [24.5, 26.0], "rssi": -61,
    }  # fmt: skip


async def per_status(chargers: int, rounds: int, folder: Path, *, with_ledger: bool) -> float:
    """CPU seconds per status, over ``rounds`` statuses of each charger (the first
    round, which announces discovery, not counted)."""
    topics = Topics("bench")
    publisher = RecordingPublisher()  # keeps what it is given, as the session's store
    ledger = Ledger(SessionStore(folder / f"bench-{with_ledger}.sessions")) if with_ledger else None
    outputs = []
    for n in range(chargers):
        name = f"c{n}"
        books = ledger.books_for(name, TariffSettings(price_per_kwh=0.3)) if ledger else None
        values = (lambda b=books: b.states()) if books is not None else dict
        output = ChargerOutput(name, publisher, topics=topics, discovery_prefix=None,
                               leaf_topics=True, on_facts=lambda facts: None,
                               added_values=values, min_interval=0.0)  # fmt: skip
        outputs.append((output, books))
    eto = [1_000_000.0 + 1000 * n for n in range(chargers)]

    async def one_round() -> None:
        for n, (output, books) in enumerate(outputs):
            eto[n] += 31.0  # 11 kW for 10 s
            current = status(n, eto[n])
            if books is not None:
                books.observe(current, serial=f"{n:06d}")
            await output.take(current, None, f"{n:06d}")
        if ledger is not None:  # what the bridge's ledger task does
            ledger.commit()
            ledger.write_progress()

    await one_round()  # discovery facts, the sessions' openings
    started = time.process_time()
    for _ in range(rounds):
        await one_round()
    took = time.process_time() - started
    if ledger is not None:
        ledger.progress_every = 0.0  # every open session due: the largest commit there is
        started_batch = time.perf_counter()
        written = ledger.write_progress()
        batch = time.perf_counter() - started_batch
        print(f"  one progress commit (capped) of {written} open sessions: {batch * 1000:.0f} ms")
        ledger.store.close()
    return took / (rounds * chargers)


def growth_per_session(folder: Path, count: int) -> float:
    path = folder / "growth.sessions"
    store = SessionStore(path)
    store.save([])  # the empty file's pages
    store._db.execute("PRAGMA wal_checkpoint(TRUNCATE)")
    empty = path.stat().st_size
    store.save(sessions(count, 1, start_id=0))
    store._db.execute("PRAGMA wal_checkpoint(TRUNCATE)")
    store.close()
    return (path.stat().st_size - empty) / count


def sessions(chargers: int, days: int, start_id: int) -> list[Session]:
    """One session a day for each charger, from day ``start_id`` of the year."""
    made = []
    rng = random.Random(start_id)
    for day in range(start_id, start_id + days):
        for n in range(chargers):
            started = YEAR_START + day * 86_400 + rng.uniform(0, 80_000)
            energy = rng.uniform(1000, 40_000)
            eto = 1e6 + day * 40_000
            made.append(Session(
                id=f"c{n}-{day}-{start_id}", charger=f"c{n}", serial=f"{n:06d}",
                started=started, eto_start=eto, eto_last=eto + energy,
                seen_at=started + 3600, currency="EUR", priced=True, reboots=7,
                ended=started + 3600, end_reason="unplugged", charger_wh=energy,
                energy_grid_wh=energy * 0.6, energy_pv_wh=energy * 0.4,
                cost_so_far=energy * 0.6 / 1000 * 0.3, peak_power_w=11_000.0, phases=3,
                card_slot=n % 3, card=("Alice", "Bob", "Eve")[n % 3], announced=True,
            ))  # fmt: skip
    return made


def summary_time(folder: Path, chargers: int, days: int) -> tuple[float, int, float]:
    path = folder / "year.sessions"
    store = SessionStore(path)
    for day in range(0, days, 10):  # ten days a commit: a year in ~37 commits
        store.save(sessions(chargers, min(10, days - day), start_id=day))
    store.close()
    size_mib = path.stat().st_size / 2**20
    reader = SessionStore(path, read_only=True)
    started = time.perf_counter()
    rows = summary(reader, "month,charger", None, filters={})
    took = time.perf_counter() - started
    reader.close()
    return took, len(rows), size_mib


def topic_price_time(calls: int = 20_000) -> float:
    """Seconds per average() over a reading's 10 s, the history full of 15-min prices."""
    price = TopicPrice("bench/price")
    t0 = 1_796_000_000.0
    for i in range(PRICE_HISTORY + 100):
        price.offer(f"{0.1 + i % 7 / 100:.2f}".encode(), t0 + i * 900)
    now = t0 + (PRICE_HISTORY + 100) * 900
    started = time.perf_counter()
    for _ in range(calls):
        price.average(now - 10, now)
    return (time.perf_counter() - started) / calls


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--chargers", type=int, default=10_000)
    parser.add_argument("--rounds", type=int, default=5, help="statuses per charger timed")
    parser.add_argument("--days", type=int, default=365, help="days of sessions to summarise")
    parser.add_argument("--price-only", action="store_true", help="only item 4")
    args = parser.parse_args()
    configure_logging("warning", "console")
    print(f"price topic, one reading's price, history full: {topic_price_time() * 1e6:.1f} µs")
    if args.price_only:
        return
    with tempfile.TemporaryDirectory(prefix="goe2mqtt-bench-ledger-") as tmp:
        folder = Path(tmp)
        print(f"{args.chargers} charging chargers, {args.rounds} statuses each:")
        without = asyncio.run(per_status(args.chargers, args.rounds, folder, with_ledger=False))
        with_ = asyncio.run(per_status(args.chargers, args.rounds, folder, with_ledger=True))
        print(f"  CPU per status without the ledger: {without * 1e6:.1f} µs;"
              f" with: {with_ * 1e6:.1f} µs ({(with_ / without - 1) * 100:+.1f} %)")  # fmt: skip
        per = growth_per_session(folder, 10_000)
        print(f"database growth: {per:.0f} bytes per session")
        took, rows, size = summary_time(folder, args.chargers, args.days)
        print(f"sessions --summary month,charger over {args.chargers * args.days} sessions"
              f" ({args.days} days of {args.chargers} chargers, {size:.0f} MiB):"
              f" {took:.2f} s, {rows} rows")  # fmt: skip
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    print(f"peak RSS {peak:.0f} MiB; Python {sys.version.split()[0]}")


if __name__ == "__main__":
    main()
