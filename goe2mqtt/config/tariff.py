"""What energy costs (the `tariff:` section) and how long the books keep sessions.

One of three ways to price a kWh: a fixed price, a weekly time-of-use table in a
timezone, or an MQTT topic carrying the current price. A time-of-use table must cover
every minute of the week exactly once: a gap or an overlap is refused at start,
naming the entries (a minute priced twice, or not at all, would be a wrong bill).
Rows are wall-clock times: on the days the clocks change, an instant takes the row of
the wall time it has (ledger/pricing.py: a boundary in the hour skipped in spring takes
effect at the jump, the hour repeated in autumn is priced by its wall time twice).
"""

from __future__ import annotations

import re
import zoneinfo
from collections.abc import Mapping
from typing import Any

from goe2mqtt.config.schema import field, key_check, section_check
from goe2mqtt.config.section import TOPIC_MAX_LENGTH, TOPIC_PATTERN, Section
from goe2mqtt.config.values import Context

DAY_NAMES = ("mon", "tue", "wed", "thu", "fri", "sat", "sun")
MINUTES_PER_DAY = 24 * 60
MAX_PRICE = 1000.0  # per kWh: beyond this a price is a mistake (a unit, a sensor glitch)
_TIME = re.compile(r"^([01][0-9]|2[0-4]):([0-5][0-9])$")


def parse_days(text: str) -> tuple[int, ...]:
    """'mon-fri', 'sat,sun', 'daily' -> weekday numbers (Monday 0); ValueError if not."""
    if text.strip().lower() in ("daily", "all", "mon-sun"):
        return tuple(range(7))
    days: list[int] = []
    for part in text.lower().replace(" ", "").split(","):
        first, _, last = part.partition("-")
        if first not in DAY_NAMES or (last and last not in DAY_NAMES):
            raise ValueError(f"days: {text!r} is not like 'mon-fri' or 'sat,sun'")
        start, end = DAY_NAMES.index(first), DAY_NAMES.index(last or first)
        span = range(start, end + 1) if start <= end else [*range(start, 7), *range(end + 1)]
        days.extend(span)
    return tuple(sorted(set(days)))


def parse_minute(text: str, key: str) -> int:
    match = _TIME.match(text)
    minute = int(match.group(1)) * 60 + int(match.group(2)) if match else -1
    if not 0 <= minute <= MINUTES_PER_DAY:
        raise ValueError(f'{key}: {text!r} is not a time of day like "07:00" (00:00 to 24:00)')
    return minute


class TimeOfUseEntry(Section):
    """One row: these days, from this time to that one, this price per kWh. A row whose
    end is before its start runs through midnight (22:00 to 07:00 on each of its days)."""

    days: str = "daily"
    start: str = field(alias="from")
    end: str = field(alias="to")
    price: float = field(ge=-MAX_PRICE, le=MAX_PRICE)

    @key_check("start", "end", before=True)
    @staticmethod
    def _quoted(value: Any) -> Any:
        """YAML 1.1 reads an unquoted 22:00 as 1320 (base 60), though 07:00 stays text."""
        if isinstance(value, int) and not isinstance(value, bool) and 0 <= value <= 1440:
            shown = f"{value // 60:02d}:{value % 60:02d}"
            raise ValueError(f'{value} is how YAML reads {shown} without quotes: write "{shown}"')
        return value

    @section_check
    def _readable(self, context: Context) -> None:
        parse_days(self.days)
        start, end = parse_minute(self.start, "from"), parse_minute(self.end, "to")
        if start == end:
            raise ValueError(f"from and to are both {self.start}: an empty range")

    def spans(self) -> list[tuple[int, int, int]]:
        """(weekday, first minute, minute after the last) for every day it covers."""
        start, end = parse_minute(self.start, "from"), parse_minute(self.end, "to")
        parts = [(start, end)] if start < end else [(start, MINUTES_PER_DAY), (0, end)]
        return [(day, a, b) for day in parse_days(self.days) for a, b in parts if a < b]


class TariffSettings(Section):
    currency: str = field(default="EUR", pattern=r"^[A-Z]{3}\Z")
    price_per_kwh: float | None = field(default=None, ge=-MAX_PRICE, le=MAX_PRICE)
    time_of_use: tuple[TimeOfUseEntry, ...] | None = None
    # IANA name (Europe/Vienna); None: the system's. Time-of-use rows and the
    # month of "this month" are read in it.
    timezone: str | None = None
    # A topic whose payload is the current price per kWh: a number or {"price": N}.
    price_topic: str | None = field(
        default=None, pattern=TOPIC_PATTERN, max_length=TOPIC_MAX_LENGTH
    )
    # What a kWh from your own PV counts (the feed-in you gave up); 0: free.
    pv_price_per_kwh: float = field(default=0.0, ge=-MAX_PRICE, le=MAX_PRICE)

    @key_check("timezone")
    @staticmethod
    def _known_zone(value: str | None, earlier: Mapping[str, Any]) -> str | None:
        if value is not None:
            try:
                zoneinfo.ZoneInfo(value)
            except (zoneinfo.ZoneInfoNotFoundError, ValueError):
                raise ValueError(f"{value!r} is not a known IANA timezone") from None
        return value

    @section_check
    def _one_way_to_price(self, context: Context) -> None:
        given = [
            key
            for key in ("price_per_kwh", "time_of_use", "price_topic")
            if getattr(self, key) is not None
        ]
        if len(given) > 1:
            raise ValueError(f"{' and '.join(given)}: give one way to price energy, not several")
        if self.time_of_use is not None:
            problems = schedule_problems(self.time_of_use)
            if problems:
                raise ValueError("time_of_use: " + "; ".join(problems))

    @property
    def priced(self) -> bool:
        return any(
            getattr(self, key) is not None
            for key in ("price_per_kwh", "time_of_use", "price_topic")
        )


def schedule_problems(entries: tuple[TimeOfUseEntry, ...]) -> list[str]:
    """Every minute of the week once: the overlaps and gaps, naming entries by index."""
    owner: list[list[int | None]] = [[None] * MINUTES_PER_DAY for _ in DAY_NAMES]
    problems: list[str] = []
    for index, entry in enumerate(entries):
        for day, start, end in entry.spans():
            for minute in range(start, end):
                other = owner[day][minute]
                if other is not None:
                    problems.append(
                        f"entries {other} and {index} overlap on {DAY_NAMES[day]}"
                        f" at {minute // 60:02d}:{minute % 60:02d}"
                    )
                    break
                owner[day][minute] = index
            if problems:
                return problems
    for day, minutes in enumerate(owner):
        if None in minutes:
            first = minutes.index(None)
            before = minutes[first - 1] if first > 0 else None
            after = next((m for m in minutes[first:] if m is not None), None)
            neighbours = " and ".join(
                f"entry {n}" for n in dict.fromkeys(x for x in (before, after) if x is not None)
            )
            problems.append(
                f"no price on {DAY_NAMES[day]} from {first // 60:02d}:{first % 60:02d}"
                + (f" (a gap next to {neighbours})" if neighbours else "")
            )
    return problems


class SessionsSettings(Section):
    keep_days: int = field(default=3650, ge=1, le=36_500)
