"""The status page: the fleet (/) and one charger (/charger/<name>), read-only.

HTML made here, every string escaped; a small script (static/page.js) keeps it live
from /events. No build step, nothing fetched from elsewhere: it works on an offline
LAN. Commands stay on MQTT, where the broker's ACLs guard them.

The script and the stylesheet go inside the page, so a page is one request: on a
bridge busy with 10 000 chargers each request waits its turn on the event loop, and
the stylesheet (which holds the first paint) and the script (which holds the page's
readiness) were two more. The Content-Security-Policy allows those two texts by their
hashes and nothing else inline: a name that smuggled a script in would still not run.
"""

from __future__ import annotations

import base64
import hashlib
import html
import json
import time
from importlib import resources
from urllib.parse import quote

from aiohttp import web

from goe2mqtt.web.cells import (
    COLUMNS,
    STATE_CHOICES,
    TRANSPORT_CHOICES,
    Selection,
    age_text,
    header_cells,
    row_cells,
)
from goe2mqtt.web.keys import LOOK, STREAMS
from goe2mqtt.web.streams import StreamSlots
from goe2mqtt.web.view import BridgeLook

HISTORY = 50  # commands shown on a charger's page


def _static(name: str, end_tag: str) -> str:
    text = resources.files("goe2mqtt.web").joinpath("static", name).read_text("utf-8")
    if end_tag in text.lower():  # it goes inside the page, in an element of its kind
        raise ValueError(f"{name} would end its own element")
    return text


def _hash(text: str) -> str:
    return "'sha256-" + base64.b64encode(hashlib.sha256(text.encode()).digest()).decode() + "'"


SCRIPT = _static("page.js", "</script")
STYLE = _static("page.css", "</style")
# No script or style runs but these two, whatever a charger's name holds.
CONTENT_SECURITY_POLICY = (
    f"default-src 'none'; script-src {_hash(SCRIPT)}; style-src {_hash(STYLE)};"
    " connect-src 'self'; img-src 'self'; base-uri 'none'; form-action 'self';"
    " frame-ancestors 'none'"
)


def _e(text: object) -> str:
    return html.escape(str(text), quote=True)


def _header(look: BridgeLook, streams: StreamSlots, title: str) -> str:
    facts = header_cells(look, streams)
    uptime = age_text(facts["started"]).removesuffix(" ago")
    items = "".join(
        f'<span>{label} <b data-h="{key}"{extra}>{_e(text)}</b></span>'
        for key, label, text, extra in (
            ("version", "goe2mqtt", facts["version"], ""),
            ("started", "up", uptime, f' data-at="{_e(facts["started"])}" data-suffix=""'),
            ("mqtt", "MQTT", facts["mqtt"], ""),
            ("journal", "journal", facts["journal"], ""),
            ("lag", "loop lag", facts["lag"], ""),
            ("pending", "results pending", facts["pending"], ""),
            ("streams", "live pages", facts["streams"], ""),
        )
    )
    return (
        "<!doctype html><html lang=en><head><meta charset=utf-8>"
        '<meta name=viewport content="width=device-width, initial-scale=1">'
        f"<title>{_e(title)}</title>"
        f"<style>{STYLE}</style></head><body>"
        f'<header><a href="/">goe2mqtt</a> <span id=live>connecting</span>{items}</header>'
    )


def _options(choices: tuple[str, ...] | list[str], chosen: str, anything: str) -> str:
    options = [f'<option value="">{_e(anything)}</option>']
    for choice in choices:
        selected = " selected" if choice == chosen else ""
        options.append(f'<option value="{_e(choice)}"{selected}>{_e(choice)}</option>')
    return "".join(options)


async def fleet_page(request: web.Request) -> web.Response:
    look = request.app[LOOK]
    selection = Selection.of(dict(request.query))
    rows, total = selection.pick(look)
    now = time.time()
    parts = [_header(look, request.app[STREAMS], "goe2mqtt")]
    parts.append(
        '<form id=filter method=get action="/">'
        f'<input name=q placeholder="name" value="{_e(selection.text)}"'
        " autocomplete=off aria-label=filter>"
        f"<select name=state aria-label=state>"
        f"{_options(list(STATE_CHOICES), selection.state, 'any state')}</select>"
        f"<select name=transport aria-label=transport>"
        f"{_options(list(TRANSPORT_CHOICES), selection.transport, 'any transport')}</select>"
        f'<input type=hidden name=size value="{selection.size}">'
        "<button>filter</button></form>"
    )
    pages = max(1, -(-total // selection.size))
    counted = f"{total} charger{'' if total == 1 else 's'}"
    nav = [f'<nav id=pages data-total="{total}">{counted}, page {selection.page} of {pages}']
    if selection.page > 1:
        nav.append(f' <a id=prev href="/?{_e(selection.query(page=selection.page - 1))}">prev</a>')
    if selection.page < pages:
        nav.append(f' <a id=next href="/?{_e(selection.query(page=selection.page + 1))}">next</a>')
    nav.append("</nav>")
    parts.append("".join(nav))
    heads = "".join(f"<th scope=col>{_e(label)}</th>" for _, label in COLUMNS)
    parts.append(f'<table id=fleet data-stream="/events?{_e(selection.query())}">'
                 f"<thead><tr>{heads}</tr></thead><tbody>")  # fmt: skip
    for row in rows:
        cells = row_cells(row)
        tds = []
        for key, _ in COLUMNS:
            text = cells[key]
            if key == "name":
                tds.append(f'<td data-f=name><a href="/charger/{_e(row.name)}">{_e(text)}</a></td>')
            elif key == "heard":
                tds.append(f'<td data-f=heard data-at="{_e(text)}">{_e(age_text(text, now))}</td>')
            else:
                tds.append(f"<td data-f={key}>{_e(text)}</td>")
        state = "online" if row.online else "offline"
        parts.append(f'<tr data-name="{_e(row.name)}" class={state}>{"".join(tds)}</tr>')
    parts.append("</tbody></table></body></html>")
    return _html("".join(parts))


async def charger_page(request: web.Request) -> web.Response:
    look = request.app[LOOK]
    name = request.match_info["name"]
    row = look.row(name)
    if row is None:
        raise web.HTTPNotFound(text="404: no such charger\n")
    cells = row_cells(row)
    parts = [_header(look, request.app[STREAMS], f"{name} - goe2mqtt")]
    parts.append(f"<h1>{_e(name)}</h1>")
    facts = "".join(
        f"<tr><th scope=row>{_e(label)}</th><td data-f={key}"
        + (f' data-at="{_e(cells[key])}">{_e(age_text(cells[key]))}' if key == "heard"
           else f">{_e(cells[key])}")
        + "</td></tr>"
        for key, label in COLUMNS
        if key != "name"
    )  # fmt: skip
    parts.append(f'<table id=charger data-name="{_e(name)}" '
                 f'data-stream="/events?charger={_e(_quoted(name))}">{facts}</table>')  # fmt: skip
    states = "".join(
        f'<tr><th scope=row>{_e(key)}</th><td data-s="{_e(key)}">{_e(_shown(value))}</td></tr>'
        for key, value in sorted(look.states(name).items())
    )
    parts.append(f"<h2>Entities</h2><table id=states>{states}</table>")
    parts.append("<h2>Last commands</h2>" + history_table(look, name))
    parts.append("</body></html>")
    return _html("".join(parts))


def history_table(look: BridgeLook, name: str) -> str:
    lines = []
    for line in look.history(name, HISTORY):
        at = time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(line.received))
        lines.append(
            f"<tr><td>{_e(at)}</td><td>{_e(line.service)}</td><td>{_e(line.state)}</td>"
            f"<td>{_e(line.outcome)}</td><td>{_e(line.error)}</td></tr>"
        )
    return (
        "<table id=history><thead><tr><th>received</th><th>service</th><th>state</th>"
        f"<th>outcome</th><th>error</th></tr></thead><tbody>{''.join(lines)}</tbody></table>"
    )


def _shown(value: object) -> str:
    if value is None:
        return ""
    if isinstance(value, str):
        return value
    return json.dumps(value, ensure_ascii=False)


def _quoted(name: str) -> str:
    return quote(name, safe="")


def _html(body: str) -> web.Response:
    # The script last: the rows are in the document when it runs.
    text = body.removesuffix("</body></html>") + f"<script>{SCRIPT}</script></body></html>"
    return web.Response(
        text=text, content_type="text/html", charset="utf-8",
        headers={"Cache-Control": "no-store", "Content-Security-Policy": CONTENT_SECURITY_POLICY},
    )  # fmt: skip
