"""What a kWh costs over an interval: fixed, by time of use, or from an MQTT topic.

Energy is priced as it flows: each interval between two readings at that interval's
price, its time-weighted average (an interval across a tariff change is split by
time). Pure; times are unix seconds, local time is the tariff's timezone.
"""

from __future__ import annotations

import json
import math
import zoneinfo
from collections import deque
from datetime import datetime, timedelta, tzinfo
from typing import Protocol

from goe2mqtt.config.tariff import MAX_PRICE, TariffSettings
from goe2mqtt.util.numbers import describe, finite_number, lenient_number

MAX_SEGMENTS = 10_000  # an interval of weeks (a charger offline that long) at most
PRICE_HISTORY = 4096  # price changes kept per topic (42 days of 15-minute prices)


class Pricing(Protocol):
    def average(self, start: float, end: float) -> float | None:
        """The price per kWh over [start, end]; None when none is known."""


class FixedPrice:
    def __init__(self, price: float) -> None:
        self.price = price

    def average(self, start: float, end: float) -> float | None:
        return self.price


def zone(name: str | None) -> tzinfo | None:
    """The tariff's timezone; None: the system's local time."""
    return None if name is None else zoneinfo.ZoneInfo(name)


def local(timestamp: float, tz: tzinfo | None) -> datetime:
    return datetime.fromtimestamp(timestamp, tz)


def month_start(timestamp: float, tz: tzinfo | None) -> float:
    """The first instant of the month ``timestamp`` falls in, in that timezone."""
    moment = local(timestamp, tz)
    return moment.replace(day=1, hour=0, minute=0, second=0, microsecond=0).timestamp()


class TimeOfUse:
    """A weekly table (validated to cover every minute once, see config/tariff.py)."""

    def __init__(self, tariff: TariffSettings) -> None:
        assert tariff.time_of_use is not None
        self.tz = zone(tariff.timezone)
        self._days: list[list[tuple[int, int, float]]] = [[] for _ in range(7)]
        for entry in tariff.time_of_use:
            for day, start, end in entry.spans():
                self._days[day].append((start, end, entry.price))
        for spans in self._days:
            spans.sort()

    def _span(self, moment: datetime) -> tuple[int, int, float]:
        minute = moment.hour * 60 + moment.minute
        for span in self._days[moment.weekday()]:
            if span[0] <= minute < span[1]:
                return span
        raise AssertionError("time_of_use was validated to cover the whole week")

    def price_at(self, timestamp: float) -> float:
        return self._span(local(timestamp, self.tz))[2]

    def _offset(self, timestamp: float) -> timedelta | None:
        moment = datetime.fromtimestamp(timestamp, self.tz)
        return (moment if self.tz is not None else moment.astimezone()).utcoffset()

    def _offset_change(self, at: float, until: float) -> float | None:
        """The first whole second in (at, until] whose UTC offset is not at's (the
        clocks change there: DST), or None. Offsets change on whole seconds."""
        offset = self._offset(at)
        if self._offset(until) == offset:
            return None
        low, high = math.floor(at), math.ceil(until)  # low: at's offset, high: not
        while high - low > 1:
            middle = (low + high) // 2
            if self._offset(middle) == offset:
                low = middle
            else:
                high = middle
        return min(float(high), until)

    def average(self, start: float, end: float) -> float | None:
        """The price of each instant is the row that covers the wall-clock time then.
        On the day the clocks go forward, a row boundary in the hour that does not exist
        (02:30) takes effect when the clocks jump (at 03:00 new time); on the day they go
        back, the hour that repeats is priced by its wall time both times."""
        if end <= start:
            return self.price_at(end)
        total, at = 0.0, start
        for _ in range(MAX_SEGMENTS):
            if at >= end:
                break
            moment = local(at, self.tz)
            _, span_end, price = self._span(moment)
            wall = moment.replace(tzinfo=None)
            midnight = wall.replace(hour=0, minute=0, second=0, microsecond=0)
            # The span's end on the wall clock, at this moment's UTC offset; the clocks
            # changing before then end the segment there (the row is read again).
            until = at + (midnight + timedelta(minutes=span_end) - wall).total_seconds()
            until = min(until, end)
            changed = self._offset_change(at, until)
            if changed is not None:
                until = changed
            total += price * (until - at)
            at = until
        if at < end:
            total += self.price_at(end) * (end - at)
        return total / (end - start)


def parse_price(payload: bytes) -> float:
    """A price payload: a number, a number as text, or {"price": N}; ValueError if not."""
    try:
        value = json.loads(payload.decode("utf-8").strip() or "null")
    except (UnicodeDecodeError, ValueError, RecursionError):
        raise ValueError("price: payload is not a number or JSON") from None
    if isinstance(value, dict):
        value = value.get("price")
    number = finite_number(lenient_number(value))
    if number is None or isinstance(value, bool):
        raise ValueError(f"price: {describe(value)} is not a number")
    if not -MAX_PRICE <= number <= MAX_PRICE:
        raise ValueError(f"price: {describe(number)} is beyond ±{MAX_PRICE:g} per kWh")
    return float(number)


class TopicPrice:
    """The price an MQTT topic says; the last good one stays (with its age) when a
    payload is refused. The first price heard counts backwards too: a retained price
    stood before we subscribed."""

    def __init__(self, topic: str) -> None:
        self.topic = topic
        self._changes: deque[tuple[float, float]] = deque(maxlen=PRICE_HISTORY)
        self._heard: float | None = None  # when the last good price came
        self.refused = 0

    def offer(self, payload: bytes, now: float) -> str | None:
        """Take a payload; the reason when it is refused."""
        try:
            price = parse_price(payload)
        except ValueError as exc:
            self.refused += 1
            return str(exc)
        if self._changes and self._changes[-1][0] > now:
            # The clock went back: what was heard under it (years ahead, maybe) is
            # stamped at a time that would not come for as long, and every interval
            # till then would take the price from before. The last one heard stands
            # from now; the history stays in order.
            last = self._changes[-1][1]
            while self._changes and self._changes[-1][0] > now:
                self._changes.pop()
            if not self._changes or self._changes[-1][1] != last:
                self._changes.append((now, last))
        self._heard = now
        if self._changes and self._changes[-1][1] == price:
            # The same price said again (a topic that repeats it every second) is no
            # change: kept, it would push real changes out of the history within the
            # hour, and a long interval (a charger offline for hours) would be priced
            # at the last hour's price; and every reading would read through repeats.
            return None
        self._changes.append((now, price))
        return None

    @property
    def last(self) -> tuple[float, float] | None:
        """(when it came, price) of the last good price."""
        if self._heard is None or not self._changes:
            return None
        return self._heard, self._changes[-1][1]

    # Both look from the newest change back: a reading's interval is recent, so that
    # is a change or two, where a scan from the oldest read the whole history (4096
    # changes, ~0.5 ms) at every status of every charger on the topic.

    def price_at(self, timestamp: float) -> float | None:
        if not self._changes:
            return None
        for when, value in reversed(self._changes):
            if when <= timestamp:
                return value
        return self._changes[0][1]  # before the first heard: it stood then (retained)

    def average(self, start: float, end: float) -> float | None:
        if not self._changes:
            return None
        if end <= start:
            return self.price_at(end)
        inside: list[tuple[float, float]] = []  # the changes within (start, end), newest first
        price = self._changes[0][1]
        for when, value in reversed(self._changes):
            if when <= start:
                price = value
                break
            if when < end:
                inside.append((when, value))
        total, at = 0.0, start
        for when, value in reversed(inside):
            total += price * (when - at)
            at, price = when, value
        total += price * (end - at)
        result = total / (end - start)
        return result if math.isfinite(result) else None


def pricing_for(tariff: TariffSettings, topics: dict[str, TopicPrice]) -> Pricing | None:
    """The tariff's pricing (topic prices shared by every charger on the topic);
    None when it prices nothing."""
    if tariff.price_per_kwh is not None:
        return FixedPrice(tariff.price_per_kwh)
    if tariff.time_of_use is not None:
        return TimeOfUse(tariff)
    if tariff.price_topic is not None:
        return topics.setdefault(tariff.price_topic, TopicPrice(tariff.price_topic))
    return None
