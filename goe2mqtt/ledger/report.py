"""`goe2mqtt sessions`: the books as a table, CSV or JSON, and totals by month.

Pure formatting over the store (opened read-only: the daemon may be writing). CSV
has a header row and one session a line (README "Session ledger" documents the
columns); a spreadsheet opens it as is. Months are the tariff's timezone's.
"""

from __future__ import annotations

import csv
import io
import json
from collections.abc import Iterable, Sequence
from datetime import datetime, timedelta, tzinfo
from typing import Any

from goe2mqtt.ledger.pricing import local
from goe2mqtt.ledger.record import COLUMNS, Session
from goe2mqtt.ledger.store import SessionStore

SUMMARY_COLUMNS = ("sessions", "energy_kwh", "grid_kwh", "pv_kwh", "cost", "unpriced")


# A spreadsheet runs a cell that begins with one of these as a formula (CSV injection):
# text from a charger (a card's name, its serial) gets a leading ' there, as OWASP advises.
FORMULA_START = ("=", "+", "-", "@", "\t", "\r")


def as_text(value: str) -> str:
    """Text for a CSV cell that a spreadsheet shows, never runs."""
    return "'" + value if value.startswith(FORMULA_START) else value


def _cell(column: str, value: Any) -> str:
    if value is None:
        return ""
    if column == "cost":
        return f"{value:.2f}"
    if column == "flags":
        return as_text("; ".join(value))
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, str):
        return as_text(value)
    return str(value)


def as_csv(sessions: Iterable[Session], now: float) -> str:
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\r\n")  # RFC 4180: what spreadsheets expect
    writer.writerow(COLUMNS)
    for session in sessions:
        record = session.public(now)
        writer.writerow([_cell(c, record[c]) for c in COLUMNS])
    return out.getvalue()


def as_json(sessions: Iterable[Session], now: float) -> str:
    return json.dumps([s.public(now) for s in sessions], indent=1, ensure_ascii=False) + "\n"


def as_table(rows: Sequence[Sequence[str]], header: Sequence[str]) -> str:
    widths = [max(len(str(cell)) for cell in column) for column in zip(header, *rows, strict=True)]
    lines = ["  ".join(str(c).ljust(w) for c, w in zip(line, widths, strict=True)).rstrip()
             for line in (header, *rows)]  # fmt: skip
    return "\n".join(lines) + "\n"


TABLE_COLUMNS = ("start", "charger", "card", "duration_s", "energy_wh", "energy_pv_wh", "cost",
                 "currency", "ended", "flagged")  # fmt: skip


def sessions_table(sessions: Iterable[Session], now: float) -> str:
    rows = []
    for session in sessions:
        record = session.public(now)
        rows.append([_cell(c, record[c]) or "-" for c in TABLE_COLUMNS])
    return as_table(rows, TABLE_COLUMNS)


def month_bounds(first: float, last: float, tz: tzinfo | None) -> list[tuple[str, float, float]]:
    """(YYYY-MM, start, end) of every month from the one of ``first`` to that of ``last``."""
    moment = local(first, tz).replace(day=1, hour=0, minute=0, second=0, microsecond=0)
    months = []
    while moment.timestamp() <= last:
        following = moment.replace(year=moment.year + moment.month // 12,
                                   month=moment.month % 12 + 1)  # fmt: skip
        months.append((moment.strftime("%Y-%m"), moment.timestamp(), following.timestamp()))
        moment = following
    return months


def summary(store: SessionStore, by: str, tz: tzinfo | None, *,
            filters: dict[str, Any]) -> list[tuple[Any, ...]]:  # fmt: skip
    """(month, card or charger, sessions, kWh, grid kWh, PV kWh, cost, unpriced) rows."""
    group = "card" if by == "month,card" else "charger"
    span = store.span(**filters)
    if span is None:
        return []
    rows = store.summary(group, month_bounds(*span, tz), **filters)
    return [
        (month, name, count, round(wh / 1000, 3), round(grid / 1000, 3), round(pv / 1000, 3),
         round(cost, 2), unpriced)
        for month, name, count, wh, grid, pv, cost, unpriced in rows
    ]  # fmt: skip


def summary_text(rows: list[tuple[Any, ...]], by: str, fmt: str) -> str:
    """The totals; the columns: month, card (or charger), then SUMMARY_COLUMNS."""
    header = ("month", by.split(",")[1], *SUMMARY_COLUMNS)
    if fmt == "json":
        return json.dumps([dict(zip(header, r, strict=True)) for r in rows],
                          indent=1, ensure_ascii=False) + "\n"  # fmt: skip
    cells = [[f"{v:.3f}" if 3 <= i <= 5 else f"{v:.2f}" if i == 6 else str(v)
              for i, v in enumerate(r)] for r in rows]  # fmt: skip
    if fmt == "csv":
        cells = [[row[0], as_text(row[1]), *row[2:]] for row in cells]
        out = io.StringIO()
        writer = csv.writer(out, lineterminator="\r\n")
        writer.writerow(header)
        writer.writerows(cells)
        return out.getvalue()
    return as_table(cells, header)


def day_start(text: str, tz: tzinfo | None) -> float:
    """YYYY-MM-DD as the first instant of that day in the tariff's timezone."""
    return _midnight(datetime.strptime(text, "%Y-%m-%d"), tz)


def day_end(text: str, tz: tzinfo | None) -> float:
    """The first instant after that day: the next midnight, not 24 h on (a day the
    clocks change has 23 or 25 hours)."""
    return _midnight(datetime.strptime(text, "%Y-%m-%d") + timedelta(days=1), tz)


def _midnight(day: datetime, tz: tzinfo | None) -> float:
    return day.replace(tzinfo=tz).timestamp() if tz is not None else day.timestamp()
