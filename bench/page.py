"""Benchmark: the status page's first page at fleet size in Chromium (issue 29, item 10).

Not a test: it prints figures. It runs N simulated chargers (plain HTTP, one simulator
host in this process, bench/bench.py --fleet's shape: a fifth with a car polled every
10 s, the rest idle every 30 s), a Mosquitto of its own and goe2mqtt as its own process
(from this checkout, or --bridge-path another), waits until every charger is online,
then:

- opens / in Chromium --opens times, each in a new browser context (an empty cache, as
  a first visit), and reads the page's own Performance API:
  - interactive: navigation start to the end of the page script's DOMContentLoaded
    handler (static/page.js), where the filter box gets its listener, the ages start
    counting and the live stream opens. The first page's rows are in the HTML, so they
    are in the document by then (the bench checks the row count at that moment);
  - first paint: first-contentful-paint;
  - the document's response start (the bridge's answer), the bytes the browser took
    over the wire (the document and whatever it loaded; a resource from the browser's
    cache counts 0) and the bridge's loop lag as its header says it;
- with the page open, the live stream: its rows and bytes per second over --stream
  seconds (/events for the first page, as the page opens it; and for a page filtered by
  state, which looks at every charger's state);
- the bridge's answer to GET / and to GET /?state=charging (a filter by state), timed
  from here, median of 10;
- the bridge's CPU share with no page open, and with one page filtered by state open.

With --streams K it measures only the live streams' cost (no Chromium): the bridge's
CPU share with no stream open, then with K streams of the first page held open, and
what one stream more gets (with K = 64, http.max_streams' default: 503 with
Retry-After; 200 from a bridge without the limit, --bridge-path of the code before);
--max-streams sets http.max_streams.

    flock /tmp/bench.lock python bench/page.py                 # 10 000 chargers, 10 opens
    flock /tmp/bench.lock python bench/page.py --bridge-path /work/main   # the code before
    python bench/page.py --n 500 --streams 64                  # the limit's worth of streams
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import statistics
import sys
import tempfile
import time
import uuid
from pathlib import Path
from typing import Any

import aiohttp

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import bridge_process
from poll_fleet import proc_cpu, serials

from goe2mqtt.sim.broker import MosquittoBroker, free_port
from goe2mqtt.sim.simulator import SimulatedCharger, Simulator
from tests.browser import chromium

TOKEN = "bench-token"
# What the page's Performance API says of one opening (all in ms from navigation start).
TIMING = """() => {
  const n = performance.getEntriesByType('navigation')[0];
  const paint = performance.getEntriesByName('first-contentful-paint')[0];
  const bytes = [n, ...performance.getEntriesByType('resource')]
    .reduce((sum, e) => sum + (e.transferSize || 0), 0);
  return {interactive_ms: n.domContentLoadedEventEnd,
          first_paint_ms: paint ? paint.startTime : -1, response_ms: n.responseStart,
          document_ms: n.responseEnd, bytes: bytes, document_bytes: n.transferSize,
          rows: document.querySelectorAll('#fleet tbody tr').length,
          resources: performance.getEntriesByType('resource').length,
          loop_lag: document.querySelector('[data-h="lag"]').textContent};
}"""
# Counts the rows in the document when DOMContentLoaded ends (a listener added first by
# Playwright runs before the page's own; this one is added last, on the window).
ROWS_AT_READY = """window.addEventListener('DOMContentLoaded', () => {
  window.__rowsAtReady = document.querySelectorAll('#fleet tbody tr').length;
});"""


async def stream_figures(url: str, path: str, seconds: float) -> dict[str, float]:
    """Rows and bytes a second of one open page's live stream (after its first event,
    which holds the page's cells once)."""
    rows = events = size = 0
    async with aiohttp.ClientSession() as session, session.get(url + path) as answer:
        started = None
        buffer = b""
        while True:
            left = seconds if started is None else seconds - (time.monotonic() - started)
            if left <= 0:
                break
            try:
                chunk = await asyncio.wait_for(answer.content.readany(), left)
            except TimeoutError:
                break
            if not chunk:
                break
            buffer += chunk
            while b"\n\n" in buffer:
                event, buffer = buffer.split(b"\n\n", 1)
                if not event.startswith(b"data: "):
                    continue
                if started is None:  # the first event: the page's cells, once
                    started = time.monotonic()
                    continue
                size += len(event) + 2
                events += 1
                rows += len(json.loads(event[6:]).get("rows", {}))
    return {"rows_per_s": rows / seconds, "events_per_s": events / seconds,
            "bytes_per_s": size / seconds}  # fmt: skip


async def answer_ms(url: str, path: str, times: int = 10) -> float:
    walls = []
    async with aiohttp.ClientSession() as session:
        for _ in range(times):
            started = time.monotonic()
            async with session.get(url + path) as answer:
                await answer.read()
            walls.append(time.monotonic() - started)
    return round(statistics.median(walls) * 1000, 1)


async def cpu_share(pid: int, seconds: float) -> float:
    cpu0, t0 = proc_cpu(pid), time.monotonic()
    await asyncio.sleep(seconds)
    return round((proc_cpu(pid) - cpu0) / (time.monotonic() - t0), 3)


async def held_streams_figures(url: str, pid: int, count: int, seconds: float) -> dict[str, Any]:
    """The bridge's CPU share with ``count`` first-page streams held open (each read, so
    the bridge never waits on a full socket), and the answer to one stream more."""
    result: dict[str, Any] = {"streams": count}
    result["cpu_share_no_stream"] = await cpu_share(pid, seconds)
    connector = aiohttp.TCPConnector(limit=0)
    async with aiohttp.ClientSession(connector=connector) as session:
        answers = [await session.get(url + "/events") for _ in range(count)]
        readers = [asyncio.create_task(_drain(answer)) for answer in answers]
        try:
            result["held_statuses"] = sorted({answer.status for answer in answers})
            await asyncio.sleep(2)  # every stream past its first, full event
            result["cpu_share_streams_open"] = await cpu_share(pid, seconds)
            async with session.get(url + "/events") as more:
                result["one_more"] = [more.status, more.headers.get("Retry-After")]
        finally:
            for reader in readers:
                reader.cancel()
            for answer in answers:
                answer.close()
    return result


async def _drain(answer: aiohttp.ClientResponse) -> None:
    while await answer.content.readany():
        pass


async def page_figures(url: str, opens: int) -> list[dict[str, Any]]:
    figures = []
    async with chromium() as browser:
        for _ in range(opens):
            context = await browser.new_context()  # an empty cache: a first visit
            page = await context.new_page()
            await page.add_init_script(ROWS_AT_READY)
            await page.goto(url + "/", wait_until="load", timeout=120_000)
            await page.wait_for_function("window.__rowsAtReady !== undefined")
            timing = await page.evaluate(TIMING)
            timing["rows_at_interactive"] = await page.evaluate("window.__rowsAtReady")
            figures.append(timing)
            await context.close()
    return figures


def summary(values: list[float]) -> dict[str, float]:
    """Median and max; a first paint Chromium did not record (-1) left out."""
    values = [value for value in values if value >= 0] or [-1]
    return {"median": round(statistics.median(values), 1), "max": round(max(values), 1)}


async def page_run(url: str, pid: int, args: Any, result: dict[str, Any]) -> None:
    """The page's figures: first visits in Chromium, the live stream, the CPU."""
    result["cpu_share_no_page"] = await cpu_share(pid, args.stream)
    result["get_first_page_ms"] = await answer_ms(url, "/")
    result["get_state_filtered_ms"] = await answer_ms(url, "/?state=charging")
    opens = await page_figures(url, args.opens)
    result["opens"] = opens
    for key in ("interactive_ms", "first_paint_ms", "response_ms", "bytes"):
        result[key] = summary([o[key] for o in opens])
    result["rows_at_interactive"] = sorted({o["rows_at_interactive"] for o in opens})
    async with chromium() as browser:  # the page open while its stream is counted
        page = await browser.new_page()
        await page.goto(url + "/", timeout=120_000)
        result["stream_first_page"] = await stream_figures(url, "/events", args.stream)
    filtered = asyncio.create_task(stream_figures(url, "/events?state=charging", args.stream))
    await asyncio.sleep(1)
    result["cpu_share_state_filtered_stream"] = await cpu_share(pid, args.stream - 2)
    result["stream_state_filtered"] = await filtered


async def run(args: Any) -> dict[str, Any]:
    n, scan = args.n, 10.0
    chargers = [SimulatedCharger(serial, TOKEN) for serial in serials(n)]
    for charger in chargers[: n // 5]:
        charger.plug_in()
    simulator = Simulator(chargers)
    await simulator.start()
    workdir = Path(tempfile.mkdtemp(prefix="goe2mqtt-page-"))
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    tree = bridge_process.tree_of(args.bridge_path)
    result: dict[str, Any] = {"n": n, "bridge_from": str(bridge_process.source(tree)),
                              "load_before": os.getloadavg()}  # fmt: skip
    with MosquittoBroker() as broker:
        config = workdir / "config.yaml"
        config.write_text(json.dumps({
            "mqtt": {"host": broker.host, "port": broker.port, "base_topic": "page",
                     "client_id": f"page-{uuid.uuid4().hex[:6]}", "discovery": False,
                     "leaf_topics": False},
            "state_dir": str(workdir),
            "http": {"listen": f"127.0.0.1:{port}", "charger_metrics": "health",
                     **({"max_streams": args.max_streams} if args.max_streams else {})},
            "chargers": [{"name": f"c{c.serial}", "serial": c.serial, "token": TOKEN,
                          "api_url": simulator.url_for(c.serial), "scan_interval": scan,
                          "idle_scan_interval": 30.0} for c in chargers],
        }))  # fmt: skip
        log = workdir / "bridge.log"
        arguments = ["--config", str(config), "--log-level", "warning", "--log-format", "json"]
        bridge = bridge_process.start(tree, arguments, log)
        try:
            result["startup_s"] = round(await bridge_process.until_online(url, n, bridge, log), 1)
            await asyncio.sleep(2 * scan)  # every charger on its own schedule
            if args.streams:
                result.update(await held_streams_figures(url, bridge.pid, args.streams,
                                                         args.stream))  # fmt: skip
            else:
                await page_run(url, bridge.pid, args, result)
        finally:
            bridge_process.stop(bridge)
    await simulator.stop()
    result["load_after"] = os.getloadavg()
    return result


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--n", type=int, default=10_000)
    parser.add_argument("--opens", type=int, default=10)
    parser.add_argument("--stream", type=float, default=20.0, help="s the streams are counted")
    parser.add_argument("--bridge-path", default="", help="the tree the bridge runs from")
    parser.add_argument("--max-streams", type=int, default=0,
                        help="http.max_streams (code before it: leave out)")  # fmt: skip
    parser.add_argument("--streams", type=int, default=0,
                        help="only the cost of this many live streams held open")  # fmt: skip
    args = parser.parse_args()
    result = asyncio.run(run(args))
    print(json.dumps({k: v for k, v in result.items() if k != "opens"}, default=str))
    if "opens" in result:
        print(json.dumps(result["opens"]))


if __name__ == "__main__":
    main()
