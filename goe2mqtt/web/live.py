"""/events: the open page's live stream (server-sent events), only what changed.

Each stream looks at what its page shows - one page of the fleet (at most
MAX_PAGE_SIZE rows, whatever the fleet's size) or one charger - every TICK seconds,
and sends the cells that differ from what it sent before. A browser that reconnects
(the bridge restarted) gets its page's cells anew. Nothing here holds up polls: a
tick reads a page's worth of rows.
"""

from __future__ import annotations

import asyncio
import json
import time
from typing import Any

from aiohttp import web

from goe2mqtt.web.cells import Selection, header_cells, row_cells
from goe2mqtt.web.keys import LOOK
from goe2mqtt.web.view import BridgeLook

TICK = 1.0  # s: a change reaches the page within this (plus the browser's own time)
RETRY_MS = 1000  # how soon a browser reconnects after the stream broke
HEARTBEAT = 15.0  # s: a comment line, so proxies and browsers keep an idle stream
HISTORY = 50


def _changed(new: dict[str, Any], old: dict[str, Any]) -> dict[str, Any]:
    return {key: value for key, value in new.items() if old.get(key) != value}


class _Stream:
    """A page's stream: the header every page shows, sent again where it changed."""

    def __init__(self, look: BridgeLook) -> None:
        self._look = look
        self._header: dict[str, Any] = {}

    def _header_news(self) -> dict[str, Any]:
        """A new event, with the header's cells that changed since the last look."""
        event: dict[str, Any] = {}
        header = header_cells(self._look)
        if changed := _changed(header, self._header):
            event["header"] = changed
            self._header = header
        return event


class FleetStream(_Stream):
    """What one fleet page shows, and what of it changed since the last look."""

    def __init__(self, look: BridgeLook, selection: Selection) -> None:
        super().__init__(look)
        self._selection = selection
        self._rows: dict[str, dict[str, str]] = {}
        self._names: list[str] | None = None
        self._total = -1

    def news(self) -> dict[str, Any]:
        look = self._look
        event = self._header_news()
        rows, total = self._selection.pick(look)
        names = [row.name for row in rows]
        if self._names is not None and (names != self._names or total != self._total):
            # Other chargers match now: the page asks for itself anew.
            event["layout"] = True
        self._names, self._total = names, total
        changed_rows = {}
        for row in rows:
            cells = row_cells(row)
            if diff := _changed(cells, self._rows.get(row.name, {})):
                changed_rows[row.name] = diff
            self._rows[row.name] = cells
        if changed_rows:
            event["rows"] = changed_rows
        return event


class ChargerStream(_Stream):
    """What one charger's page shows: its row, every entity, its last commands."""

    def __init__(self, look: BridgeLook, name: str) -> None:
        super().__init__(look)
        self._name = name
        self._cells: dict[str, str] = {}
        self._states: dict[str, Any] = {}
        self._history: list[list[str]] | None = None

    def news(self) -> dict[str, Any]:
        look = self._look
        event = self._header_news()
        row = look.row(self._name)
        if row is None:
            return event
        cells = row_cells(row)
        if diff := _changed(cells, self._cells):
            event["rows"] = {self._name: diff}
            self._cells = cells
        states = {k: _text(v) for k, v in look.states(self._name).items()}
        if diff := _changed(states, self._states):
            event["states"] = diff
            self._states = states
        history = [
            [
                time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(line.received)),
                line.service, line.state, line.outcome, line.error,
            ]
            for line in look.history(self._name, HISTORY)
        ]  # fmt: skip
        if history != self._history:
            if self._history is not None:
                event["history"] = history
            self._history = history
        return event


def _text(value: Any) -> str:
    if value is None:
        return ""
    return value if isinstance(value, str) else json.dumps(value, ensure_ascii=False)


async def events(request: web.Request) -> web.StreamResponse:
    look = request.app[LOOK]
    name = request.query.get("charger")
    stream: FleetStream | ChargerStream
    if name is not None:
        if look.row(name) is None:
            raise web.HTTPNotFound(text="404: no such charger\n")
        stream = ChargerStream(look, name)
    else:
        stream = FleetStream(look, Selection.of(dict(request.query)))
    response = web.StreamResponse(
        headers={
            "Content-Type": "text/event-stream",
            "Cache-Control": "no-store",
            "X-Accel-Buffering": "no",
        }
    )
    await response.prepare(request)
    try:
        await response.write(f"retry: {RETRY_MS}\n\n".encode())
        quiet_since = time.monotonic()
        while True:
            event = stream.news()
            if event:
                data = json.dumps(event, ensure_ascii=False, separators=(",", ":"))
                await response.write(f"data: {data}\n\n".encode())
                quiet_since = time.monotonic()
            elif time.monotonic() - quiet_since > HEARTBEAT:
                await response.write(b": still here\n\n")
                quiet_since = time.monotonic()
            await asyncio.sleep(TICK)
    except ConnectionResetError:
        # The page was closed (or its reader went away): how a stream ends, not an
        # error. Left to aiohttp, each was an error line "Error handling request".
        return response
