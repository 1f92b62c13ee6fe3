"""/metrics at fleet size: the text metrics.exposition makes, made on the event loop a
few chargers at a time, and only for what changed since the last scrape.

prometheus-client writes every line. The per-charger families are rendered STEP
chargers at a time; after HOLD seconds the event loop takes a turn (the polls and
commands due go first), so a scrape of 10 000 chargers never holds it for long, and
no thread fights the loop for the interpreter lock. Each charger's lines in each family
are kept with the samples they were written from; the next scrape writes again only
those whose samples differ (the chargers polled since), and the ages, which change
with every scrape. The pieces are joined family by family, each family's HELP and TYPE
once: they are the text prometheus-client writes for the family with no sample, which
is how its text with samples starts.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Iterable, Iterator
from itertools import islice

from aiohttp import web
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest
from prometheus_client.core import Metric

from goe2mqtt.web.keys import LOOK, SCRAPER_SLOT, SETTINGS, STREAMS
from goe2mqtt.web.metrics import (
    PROCESS,
    ChargerFamily,
    Samples,
    bridge_families,
    charger_families_for,
    command_families,
    stream_families,
    take_snapshot,
)
from goe2mqtt.web.view import BridgeLook, ChargerRow

HOLD = 0.02  # s: about the longest the event loop is held before it takes a turn
STEP = 50  # chargers rendered between two looks at the clock


class _Only:
    """A collector over families made already (what generate_latest reads)."""

    def __init__(self, families: Iterable[Metric]) -> None:
        self._families = list(families)

    def collect(self) -> Iterator[Metric]:
        return iter(self._families)


def render(families: Iterable[Metric]) -> bytes:
    return generate_latest(_Only(families))


class _FamilyLines:
    """One per-charger family: its header, and each charger's lines as last written."""

    def __init__(self, spec: ChargerFamily) -> None:
        self.spec = spec
        self.header = render([spec.family()])  # HELP and TYPE: the text of no sample
        self.kept: dict[str, tuple[Samples, bytes]] = {}

    def add(self, rows: list[ChargerRow], now: float, out: list[bytes],
            kept: dict[str, tuple[Samples, bytes]]) -> None:  # fmt: skip
        """Append the rows' lines to out (and what to keep for next time to kept)."""
        spec, before = self.spec, self.kept
        keep = not spec.changes_every_scrape
        missed: list[tuple[int, str, Samples]] = []
        for row in rows:
            samples = spec.samples(row, now)
            if not samples:
                continue
            known = before.get(row.name)
            if known is not None and known[0] == samples:
                out.append(known[1])
                kept[row.name] = known
            else:
                missed.append((len(out), row.name, samples))
                out.append(b"")
        if not missed:
            return
        family = spec.family()
        for _, _, samples in missed:
            for labels, value in samples:
                family.add_metric(labels, value)
        text = render([family])
        if not text.startswith(self.header):
            raise RuntimeError(f"{spec.name}: prometheus-client's text starts otherwise")
        # One line per sample: label values are escaped, a newline in one included.
        lines = text[len(self.header) :].split(b"\n")
        at = 0
        for index, name, samples in missed:
            count = len(samples)
            if count == 1:
                chunk = lines[at] + b"\n"
            else:
                chunk = b"".join(line + b"\n" for line in lines[at : at + count])
            at += count
            out[index] = chunk
            if keep:
                kept[name] = (samples, chunk)


class Scraper:
    """Makes /metrics for one bridge; keeps each charger's lines between scrapes."""

    def __init__(self, charger_metrics: str) -> None:
        self._kind = charger_metrics
        self._families = [_FamilyLines(spec) for spec in charger_families_for(charger_metrics)]
        self._running: asyncio.Future[bytes] | None = None

    async def exposition(self, look: BridgeLook) -> bytes:
        """The text; a request that comes while one is being made gets that one (a scrape
        Prometheus gave up on is not made twice, and two never run side by side)."""
        if self._running is None:
            self._running = asyncio.ensure_future(self._make(look))
            self._running.add_done_callback(self._done)
        return await asyncio.shield(self._running)

    def _done(self, running: asyncio.Future[bytes]) -> None:
        self._running = None
        if not running.cancelled():
            running.exception()  # seen: its requests got it

    async def _make(self, look: BridgeLook) -> bytes:
        kind = self._kind
        snap = take_snapshot(look, kind, with_rows=False)
        parts = [render([*bridge_families(snap), *command_families(snap, kind != "none")])]
        families = self._families
        outs: list[list[bytes]] = [[] for _ in families]
        kept: list[dict[str, tuple[Samples, bytes]]] = [{} for _ in families]
        rows = iter(look.rows()) if families else iter(())
        held_since = time.perf_counter()
        while batch := list(islice(rows, STEP)):
            for lines, out, keep in zip(families, outs, kept, strict=True):
                lines.add(batch, snap.now, out, keep)
            if time.perf_counter() - held_since >= HOLD:
                await asyncio.sleep(0)  # the polls and commands due meanwhile go first
                held_since = time.perf_counter()
        for lines, out, keep in zip(families, outs, kept, strict=True):
            lines.kept = keep  # chargers no longer there are forgotten
            parts.append(lines.header)
            parts.extend(out)
        parts.append(render(PROCESS.collect()))
        return b"".join(parts)


async def metrics_handler(request: web.Request) -> web.Response:
    slot = request.app[SCRAPER_SLOT]
    scraper: Scraper | None = slot.get("scraper")
    if scraper is None:
        scraper = slot["scraper"] = Scraper(request.app[SETTINGS].charger_metrics)
    body = await scraper.exposition(request.app[LOOK])
    body += render(stream_families(request.app[STREAMS]))  # the HTTP server's own
    response = web.Response(body=body, headers={"Cache-Control": "no-store"})
    response.headers["Content-Type"] = CONTENT_TYPE_LATEST
    return response
