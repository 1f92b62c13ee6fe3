"""Benchmark: /metrics and the status page at fleet size (issue 29, items 4 and 10).

Not a test: it prints a table. For each N it runs the simulated cloud with N chargers
(in this process, so it times every poll), a Mosquitto of its own and goe2mqtt as its
own process, waits until every charger is online, then:

- five scrapes in a row: their size and wall time (the first one is the bridge's first,
  which writes every line; its baseline-subtracted CPU estimate is in the JSON as cpu_s);
- a window with no scrape: the share of polls on time (each within 10 % of its interval,
  as bench/bench.py counts them), what this machine allows now;
- the same window while a real Prometheus (Debian's) scrapes every 15 s: the polls on
  time, and from Prometheus its longest scrape, the scrapes that succeeded and the
  longest hold of the bridge's event loop (goe2mqtt_event_loop_lag_seconds);
- the status page's first page in Chromium: navigation to DOMContentLoaded (the page
  is interactive then: its script is deferred and ran) and to the first paint;
- last, apart (in this process, the simulator stopped), the CPU prometheus-client and
  web.scrape take to write the text for N chargers like these: in one go, as a first
  scrape, and as a scrape 15 s after another.

The fleet has bench/bench.py --fleet's shape: a fifth of the chargers with a car,
polled every 10 s, the rest idle, every 30 s (one simulator host for all of them).

    python bench/scrape.py                     # N = 1000, 10000; 60 s windows
    python bench/scrape.py --sizes 1000 --window 30
"""

from __future__ import annotations

import argparse
import asyncio
import json
import statistics
import sys
import tempfile
import time
import uuid
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import aiohttp

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import bridge_process
from poll_fleet import PollClock, proc_cpu, serials

from goe2mqtt.sim.broker import MosquittoBroker, free_port
from goe2mqtt.sim.simulator import SimulatedCharger, Simulator
from tests.browser import chromium
from tests.prometheus import prometheus, query

TOKEN = "bench-token"


async def exposition_cpu(n: int, kind: str) -> dict[str, float]:
    """CPU seconds the bridge takes to write the text for N chargers like these, measured
    apart (in this process, away from the polling): in one go (metrics.exposition, what
    a scrape cost before web.scrape), and as web.scrape makes it: the first scrape, and
    one 15 s later in this fleet's shape (every charger's age moved; the fifth with a
    car polled and charged since, half the idle ones polled)."""
    import dataclasses

    from goe2mqtt.web.metrics import exposition, take_snapshot
    from goe2mqtt.web.scrape import Scraper
    from goe2mqtt.web.view import ChargerRow, DurationCounts

    now = time.time()
    rows = [
        ChargerRow(name=f"c{serial}", online=True, offline_reason="", connection="polling",
                   model="go-eCharger_V4", firmware="60.4", last_update=now - i % 30,
                   car_state=2 if i < n // 5 else 1, power_watts=11040.0 if i < n // 5 else 0.0,
                   currents=(16.0, 16.0, 16.0), energy_total_kwh=1234.5, temperature=30.0,
                   polls={"ok": 100}, reconnects=0)
        for i, serial in enumerate(serials(n))
    ]  # fmt: skip

    look: Any = SimpleNamespace(  # what web.scrape reads of a bridge
        version="bench", mqtt_connected=True, mqtt_disconnects={}, journal_error=None,
        results_pending=0, loop_lag=0.0, rows=lambda: rows, command_outcomes=dict,
        command_durations=lambda: DurationCounts((), {}, {}),
    )  # fmt: skip
    started = time.process_time()
    exposition(take_snapshot(look, kind), kind)
    figures = {"one_go": time.process_time() - started}
    scraper = Scraper(kind)
    started = time.process_time()
    await scraper.exposition(look)
    figures["first"] = time.process_time() - started
    later = time.time()  # polled just now
    rows[:] = [
        dataclasses.replace(row, last_update=later, polls={"ok": 101},
                            energy_total_kwh=1234.5 + (0.05 if i < n // 5 else 0.0))
        if i < n // 5 or i % 2 else row
        for i, row in enumerate(rows)
    ]  # fmt: skip
    started = time.process_time()
    await scraper.exposition(look)
    figures["next"] = time.process_time() - started
    return figures


SCRAPES = 5
BASELINE = 20.0  # s


async def scrape_figures(url: str, pid: int) -> dict[str, Any]:
    """Size and cost of a scrape; its CPU is what the bridge spent beyond its polling
    (its CPU rate over a quiet BASELINE seconds before, subtracted)."""
    sizes, walls = [], []
    cpu0, t0 = proc_cpu(pid), time.monotonic()
    await asyncio.sleep(BASELINE)
    polling_rate = (proc_cpu(pid) - cpu0) / (time.monotonic() - t0)
    async with aiohttp.ClientSession() as session:
        cpu0, t0 = proc_cpu(pid), time.monotonic()
        for _ in range(SCRAPES):
            started = time.monotonic()
            async with session.get(f"{url}/metrics") as answer:
                body = await answer.read()
            walls.append(time.monotonic() - started)
            sizes.append(len(body))
        cpu = (proc_cpu(pid) - cpu0 - polling_rate * (time.monotonic() - t0)) / SCRAPES
    return {"bytes": statistics.median(sizes), "cpu_s": cpu, "wall_s": statistics.median(walls),
            "wall_first_s": walls[0], "series": body.count(b"\n") - body.count(b"\n#")}  # fmt: skip


async def page_figures(url: str) -> dict[str, float]:
    async with chromium() as browser:
        page = await browser.new_page()
        figures = []
        for _ in range(3):
            await page.goto(url + "/", wait_until="domcontentloaded", timeout=120_000)
            timing = await page.evaluate(
                "() => { const n = performance.getEntriesByType('navigation')[0];"
                " const p = performance.getEntriesByName('first-contentful-paint')[0];"
                " return [n.domContentLoadedEventEnd, p ? p.startTime : -1,"
                " document.querySelectorAll('#fleet tbody tr').length]; }"
            )
            figures.append(timing)
    return {
        "interactive_ms": statistics.median(f[0] for f in figures),
        "first_paint_ms": statistics.median(f[1] for f in figures),
        "rows": figures[0][2],
    }


async def run_size(n: int, args: Any) -> dict[str, Any]:
    scan = args.scan_interval
    chargers = [SimulatedCharger(serial, TOKEN) for serial in serials(n)]
    # The fleet's shape (bench/bench.py --fleet): a fifth with a car, polled every scan
    # interval; the rest idle, polled every idle interval.
    active = chargers[: n // 5]
    for charger in active:
        charger.plug_in()
    simulator = Simulator(chargers)
    clock = PollClock(expected={c.serial: args.idle_interval for c in chargers})
    clock.expected.update({c.serial: scan for c in active})
    simulator.observers.append(clock)
    await simulator.start()
    workdir = Path(tempfile.mkdtemp(prefix="goe2mqtt-scrape-"))
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    result: dict[str, Any] = {"n": n}
    with MosquittoBroker() as broker:
        config = workdir / "config.yaml"
        config.write_text(json.dumps({
            "mqtt": {"host": broker.host, "port": broker.port, "base_topic": "scrape",
                     "client_id": f"scrape-{uuid.uuid4().hex[:6]}", "discovery": False,
                     "leaf_topics": False},
            "state_dir": str(workdir),
            "http": {"listen": f"127.0.0.1:{port}", "charger_metrics": args.charger_metrics},
            "chargers": [{"name": f"c{c.serial}", "serial": c.serial, "token": TOKEN,
                          "api_url": simulator.url_for(c.serial), "scan_interval": scan,
                          "idle_scan_interval": args.idle_interval} for c in chargers],
        }))  # fmt: skip
        log = workdir / "bridge.log"
        arguments = ["--config", str(config), "--log-level", "warning", "--log-format", "json"]
        bridge = bridge_process.start(bridge_process.ROOT, arguments, log)
        try:
            result["startup_s"] = round(await bridge_process.until_online(url, n, bridge, log), 1)
            await asyncio.sleep(2 * scan)  # every charger on its own schedule
            result["scrape"] = await scrape_figures(url, bridge.pid)
            # The same window without a scrape: how on time the polls are on this machine
            # now, whatever a scrape costs (once the polls those scrapes delayed caught up).
            await asyncio.sleep(2 * scan)
            clock.recording_gaps = True
            await asyncio.sleep(args.window)
            clock.recording_gaps = False
            result["unscraped"] = on_time(clock.gaps)
            clock.gaps.clear()
            async with prometheus(workdir / "prometheus", url.removeprefix("http://"),
                                  interval="15s") as prom:  # fmt: skip
                clock.recording_gaps = True
                cpu0, t0 = proc_cpu(bridge.pid), time.monotonic()
                await asyncio.sleep(args.window)
                result["bridge_cpu_share"] = round(
                    (proc_cpu(bridge.pid) - cpu0) / (time.monotonic() - t0), 3
                )
                clock.recording_gaps = False
                scraped = await query(prom, "count(goe2mqtt_charger_online)")
                result["prometheus_series_online"] = (
                    int(float(scraped[0]["value"][1])) if scraped else 0
                )
                up = await query(prom, "scrape_duration_seconds")
                result["prometheus_scrape_s"] = float(up[0]["value"][1]) if up else None
                window = f"{int(args.window)}s"
                for figure, promql in (
                    ("prometheus_scrape_max_s",
                     f"max_over_time(scrape_duration_seconds[{window}])"),
                    ("prometheus_scrapes_ok", f"sum_over_time(up[{window}])"),
                    ("loop_lag_max_s",
                     f"max_over_time(goe2mqtt_event_loop_lag_seconds[{window}])"),
                ):  # fmt: skip
                    got = await query(prom, promql)
                    result[figure] = float(got[0]["value"][1]) if got else None
            result.update(on_time(clock.gaps))
            print(json.dumps(result, default=str), flush=True)  # kept if the page fails
            async with aiohttp.ClientSession() as session:
                t0 = time.monotonic()
                async with session.get(f"{url}/") as answer:
                    await answer.read()
                result["page_get_s"] = round(time.monotonic() - t0, 3)
            if not args.no_page:
                try:
                    result["page"] = await page_figures(url)
                except Exception as exc:  # a figure missing, not the run's other figures
                    result["page"] = {"error": repr(exc)[:300]}
        finally:
            bridge_process.stop(bridge)
    await simulator.stop()
    # Last: it holds this process's loop (the simulator's) for a second or more.
    result["scrape"]["exposition_cpu_s"] = await exposition_cpu(n, args.charger_metrics)
    return result


def on_time(gaps: list[float]) -> dict[str, Any]:
    """Polls in a window, the share on time (within 10 % of the interval), the longest gap."""
    return {"polls_in_window": len(gaps),
            "on_time": sum(1 for g in gaps if g <= 1.1) / len(gaps) if gaps else 0.0,
            "gap_max": max(gaps) if gaps else None}  # fmt: skip


def print_table(results: list[dict[str, Any]]) -> None:
    print(f"{'N':>6} {'scrape KiB':>10} {'series':>7} {'CPU ms: one go':>14} {'first':>6} "
          f"{'next':>5} {'wall ms':>8} {'Prom. s':>7} {'unscraped':>9} {'on time':>8} "
          f"{'gap max':>8} {'page ms':>8} {'paint ms':>9}")  # fmt: skip
    for r in results:
        s, page = r["scrape"], r.get("page") or {}
        print(f"{r['n']:>6} {s['bytes'] / 1024:>10.0f} {s['series']:>7}"
              f" {s['exposition_cpu_s']['one_go'] * 1000:>14.0f}"
              f" {s['exposition_cpu_s']['first'] * 1000:>6.0f}"
              f" {s['exposition_cpu_s']['next'] * 1000:>5.0f}"
              f" {s['wall_s'] * 1000:>8.0f} {r['prometheus_scrape_max_s'] or float('nan'):>7.2f}"
              f" {100 * r['unscraped']['on_time']:>8.2f}%"
              f" {100 * r['on_time']:>7.2f}% {r['gap_max']:>8.2f}"
              f" {page.get('interactive_ms', float('nan')):>8.0f}"
              f" {page.get('first_paint_ms', float('nan')):>9.0f}")  # fmt: skip
    print(json.dumps(results, indent=1, default=str))


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--sizes", type=int, nargs="+", default=[1000, 10000])
    parser.add_argument("--scan-interval", type=float, default=10.0)
    parser.add_argument("--idle-interval", type=float, default=30.0)
    parser.add_argument("--window", type=float, default=60.0, help="s scraped every 15 s")
    parser.add_argument("--charger-metrics", default="all", choices=["all", "health", "none"])
    parser.add_argument("--no-page", action="store_true", help="skip the Chromium figures")
    args = parser.parse_args()
    results = [asyncio.run(run_size(n, args)) for n in args.sizes]
    print_table(results)


if __name__ == "__main__":
    main()
