"""`goe2mqtt sessions`: the books as a table, CSV or JSON, and totals by month.

Pure formatting over the store (opened read-only: the daemon may be writing). CSV
has a header row and one session a line (README "Session ledger" documents the
columns); a spreadsheet opens it as is. Days (--since, --until) and months are each
charger's tariff's timezone's (Zones): a charger with a tariff of its own in another
zone has its days and months there, as its Home Assistant sensors do.
"""

from __future__ import annotations

import csv
import io
import json
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta, tzinfo
from typing import Any

from goe2mqtt.ledger.pricing import local
from goe2mqtt.ledger.record import COLUMNS, Session
from goe2mqtt.ledger.store import SessionStore

# currency: a card that charged at chargers billed in two has a line for each.
SUMMARY_COLUMNS = ("sessions", "energy_kwh", "grid_kwh", "pv_kwh", "cost", "unpriced", "currency")


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
    return _rounded(_summary(store, by, tz, filters))


def _summary(store: SessionStore, by: str, tz: tzinfo | None,
             filters: dict[str, Any]) -> list[tuple[Any, ...]]:  # fmt: skip
    group = "card" if by == "month,card" else "charger"
    span = store.span(**filters)
    if span is None:
        return []
    return store.summary(group, month_bounds(*span, tz), **filters)


def _rounded(rows: Iterable[Sequence[Any]]) -> list[tuple[Any, ...]]:
    # A line none of whose sessions was priced has no cost (null, as the Cost this month
    # sensor says), not 0.00: without a tariff, nothing was free.
    return [
        (month, name, count, round(wh / 1000, 3), round(grid / 1000, 3), round(pv / 1000, 3),
         round(cost, 2) if unpriced < count else None, unpriced, currency)
        for month, name, count, wh, grid, pv, cost, unpriced, currency in rows
    ]  # fmt: skip


def zone_name(tz: tzinfo | None) -> str:
    return "the system's local time" if tz is None else str(tz)


@dataclass(frozen=True)
class Zones:
    """Each charger's timezone for days and months: its tariff's (a charger's own
    tariff, else the global one's); a charger no longer configured, the global one's."""

    default: tzinfo | None
    own: Mapping[str, tzinfo | None] = field(default_factory=dict)

    def of(self, charger: str) -> tzinfo | None:
        return self.own.get(charger, self.default)

    def groups(self, chargers: Iterable[str]) -> list[tuple[tzinfo | None, tuple[str, ...]]]:
        """The chargers by timezone, each zone once (the default's first)."""
        found: dict[str, tuple[tzinfo | None, list[str]]] = {}
        found[zone_name(self.default)] = (self.default, [])
        for charger in sorted(chargers):
            tz = self.of(charger)
            found.setdefault(zone_name(tz), (tz, []))[1].append(charger)
        return [(tz, tuple(names)) for tz, names in found.values() if names]

    def describe(self, chargers: Iterable[str]) -> str:
        """Which zone the days and months are in, for the output."""
        groups = self.groups(chargers)
        if len(groups) <= 1:
            return zone_name(groups[0][0] if groups else self.default)
        return "; ".join(f"{zone_name(tz)} ({', '.join(names)})" for tz, names in groups)


def _days(tz: tzinfo | None, since: str | None, until: str | None) -> dict[str, Any]:
    return {"since": None if since is None else day_start(since, tz),
            "until": None if until is None else day_end(until, tz)}  # fmt: skip


def zoned_sessions(store: SessionStore, zones: Zones, *, charger: str | None, card: str | None,
                   since: str | None, until: str | None) -> list[Session]:  # fmt: skip
    """The sessions the filters select, --since and --until (YYYY-MM-DD, ValueError if
    not) as days of each charger's own timezone."""
    groups = zones.groups([charger] if charger is not None else store.chargers())
    if len(groups) <= 1:
        tz = groups[0][0] if groups else zones.default
        return store.sessions(charger=charger, card=card, **_days(tz, since, until))
    found = [
        session
        for tz, names in groups
        for session in store.sessions(chargers=names, card=card, **_days(tz, since, until))
    ]
    return sorted(found, key=lambda s: (s.started, s.charger))


def zoned_summary(store: SessionStore, by: str, zones: Zones, *, charger: str | None,
                  card: str | None, since: str | None, until: str | None
                  ) -> list[tuple[Any, ...]]:  # fmt: skip
    """summary(), each charger's months and days in its own timezone (a card's totals
    summed over the chargers it charged at)."""
    groups = zones.groups([charger] if charger is not None else store.chargers())
    if len(groups) <= 1:
        tz = groups[0][0] if groups else zones.default
        return summary(store, by, tz, filters={"charger": charger, "card": card,
                                               **_days(tz, since, until)})  # fmt: skip
    merged: dict[tuple[str, str, str], list[Any]] = {}
    for tz, names in groups:
        filters = {"chargers": names, "card": card, **_days(tz, since, until)}
        for month, name, *figures, currency in _summary(store, by, tz, filters):
            key = (month, name, currency)
            totals = merged.setdefault(key, [0] * len(figures))
            merged[key] = [a + (b or 0) for a, b in zip(totals, figures, strict=True)]
    return _rounded((*key[:2], *merged[key], key[2]) for key in sorted(merged))


def summary_text(rows: list[tuple[Any, ...]], by: str, fmt: str) -> str:
    """The totals; the columns: month, card (or charger), then SUMMARY_COLUMNS."""
    header = ("month", by.split(",")[1], *SUMMARY_COLUMNS)
    if fmt == "json":
        return json.dumps([dict(zip(header, r, strict=True)) for r in rows],
                          indent=1, ensure_ascii=False) + "\n"  # fmt: skip
    unknown = "" if fmt == "csv" else "-"  # as the sessions' own cost shows it
    cells = [[f"{v:.3f}" if 3 <= i <= 5 else unknown if v is None
              else f"{v:.2f}" if i == 6 else str(v)
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
