"""What the status page shows of a charger and of the bridge, as text.

One place makes the text: the page's first paint (HTML, escaped there) and the live
stream's updates (JSON, put in with textContent) show the same.
"""

from __future__ import annotations

import time
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from urllib.parse import quote

from goe2mqtt.catalogue import CAR_STATES
from goe2mqtt.web.streams import StreamSlots
from goe2mqtt.web.view import BridgeLook, ChargerRow

COLUMNS = (
    ("name", "Charger"),
    ("own_name", "Its own name"),
    ("model", "Model"),
    ("firmware", "Firmware"),
    ("connection", "Connection"),
    ("online", "Online"),
    ("heard", "Last heard"),
    ("car", "Car"),
    ("power", "Power"),
    ("current", "Current L1/L2/L3"),
    ("session", "Session energy"),
    ("error", "Error"),
    ("queued", "Queued"),
)
PAGE_SIZE = 50
MAX_PAGE_SIZE = 500


def _number(value: float | None, unit: str, digits: int = 1) -> str:
    return "" if value is None else f"{value:.{digits}f} {unit}"


def row_cells(row: ChargerRow) -> dict[str, str]:
    """The row's cells; "heard" is a unix time (the page counts the age up)."""
    currents = "/".join("-" if a is None else f"{a:.1f}" for a in row.currents)
    return {
        "name": row.name,
        "own_name": row.own_name,
        "model": row.model or "",
        "firmware": row.firmware or "",
        "connection": row.connection,
        "online": "online" if row.online else f"offline: {row.offline_reason}",
        "heard": "" if row.last_update is None else f"{row.last_update:.0f}",
        "car": "" if row.car_state is None else CAR_STATES.get(row.car_state, str(row.car_state)),
        "power": _number(row.power_watts, "W", 0),
        "current": "" if currents == "-/-/-" else f"{currents} A",
        "session": _number(row.session_kwh, "kWh", 2),
        "error": row.error,
        "queued": str(row.queued),
    }


def header_cells(look: BridgeLook, streams: StreamSlots) -> dict[str, str]:
    error = look.journal_error
    return {
        "version": look.version,
        "started": f"{look.started:.0f}",
        "mqtt": "connected" if look.mqtt_connected else "disconnected",
        "journal": "ok" if error is None else f"failing: {error}",
        "lag": f"{look.loop_lag * 1000:.0f} ms",
        "pending": str(look.results_pending),
        "streams": streams.text(),
    }


def age_text(unix: str, now: float | None = None) -> str:
    """What a "heard" cell says before the script counts it up."""
    if not unix:
        return "never"
    seconds = max(0, round((time.time() if now is None else now) - float(unix)))
    return f"{seconds} s ago"


@dataclass(frozen=True)
class Selection:
    """The page a browser shows: a filter and a page number."""

    text: str = ""  # part of the name
    state: str = ""  # online, offline, or a car state name
    transport: str = ""
    page: int = 1
    size: int = PAGE_SIZE

    @classmethod
    def of(cls, query: dict[str, str]) -> Selection:
        def whole(key: str, default: int, top: int) -> int:
            try:
                return min(max(int(query.get(key, default)), 1), top)
            except ValueError:
                return default

        return cls(
            text=query.get("q", "")[:100].strip().lower(),
            state=query.get("state", "")[:40],
            transport=query.get("transport", "")[:40],
            page=whole("page", 1, 1_000_000),
            size=whole("size", PAGE_SIZE, MAX_PAGE_SIZE),
        )

    def fits(self, state: str, transport: str) -> bool:
        """A charger in this state on this transport is on the filtered pages."""
        if (
            self.state
            and state != self.state
            and not (self.state == "online" and state != "offline")
        ):
            return False
        return not self.transport or transport == self.transport

    def pick(self, look: BridgeLook) -> tuple[list[ChargerRow], int]:
        """The rows on this page, and how many match in all. Only the page's rows are
        made (an open page asks every second): a name filter looks at the names, a
        state or transport filter at every charger's state and transport (look.kinds),
        not at its whole row."""
        names: Iterable[str]
        if self.state or self.transport:
            names = [name for name, state, transport in look.kinds() if self.fits(state, transport)]
        else:
            names = look.names()
        if self.text:
            names = [name for name in names if self.text in name.lower()]
        listed = list(names)
        start = (self.page - 1) * self.size
        page = (look.row(name) for name in listed[start : start + self.size])
        return [row for row in page if row is not None], len(listed)

    def query(self, **changes: str | int) -> str:
        values: dict[str, str | int] = {
            "q": self.text, "state": self.state, "transport": self.transport,
            "page": self.page, "size": self.size,
        }  # fmt: skip
        values.update(changes)
        defaults = {"q": "", "state": "", "transport": "", "page": 1, "size": PAGE_SIZE}
        return "&".join(f"{k}={_quote(str(v))}" for k, v in values.items() if v != defaults[k])


def _quote(text: str) -> str:
    return quote(text, safe="")


STATE_CHOICES: Sequence[str] = ("online", "offline", *CAR_STATES.values())
TRANSPORT_CHOICES: Sequence[str] = ("polling", "websocket", "cloud_websocket", "mqtt", "none")
