"""A house on simulated time: what it draws per phase, what the sun gives, and a meter.

Seeded and pure: one seed is one day, the same on every run. The loads are those that
make a fuse trip in real houses: a heat pump cycling all day on three phases, an oven
for 20 minutes, a kettle on one phase a few times, a base load that wanders. The meter
publishes what the house and the chargers draw, less the sun, every few seconds, with
silent spells and, now and then, a reading that is not a number (or an outage: hours
silent, or of nothing but bad readings).
"""

from __future__ import annotations

import json
import math
import random
from dataclasses import dataclass

DAY = 86_400
VOLTS = 230.0

Amps = tuple[float, float, float]


@dataclass(frozen=True)
class Event:
    start: int  # s of the day
    end: int
    amps: Amps
    what: str


class House:
    """The loads of one seeded day (not the chargers)."""

    def __init__(self, rng: random.Random, *, heavy: float = 1.0) -> None:
        self.events: list[Event] = []
        self._base = [rng.uniform(0.4, 1.5) for _ in range(3)]
        t = rng.randrange(0, 3600)
        while t < DAY:  # the heat pump: on 15-40 min, off 15-60 min, all day
            on = rng.randrange(900, 2400)
            amps = rng.uniform(2.5, 5.0) * heavy
            self.events.append(Event(t, min(DAY, t + on), (amps, amps, amps), "heat pump"))
            t += on + rng.randrange(900, 3600)
        for _ in range(rng.randrange(1, 3)):  # the oven: 20 minutes on two phases
            start = rng.randrange(11 * 3600, 20 * 3600)
            heat = rng.uniform(7.0, 10.0) * heavy
            self.events.append(Event(start, start + 1200, (heat, heat * 0.8, 0.0), "oven"))
        for _ in range(rng.randrange(3, 9)):  # the kettle: 3 minutes, 9-13 A, one phase
            start = rng.randrange(6 * 3600, 23 * 3600)
            phase = rng.randrange(3)
            amps3 = [0.0, 0.0, 0.0]
            amps3[phase] = rng.uniform(9.0, 13.0) * heavy
            self.events.append(Event(start, start + 180, (amps3[0], amps3[1], amps3[2]),
                                     "kettle"))  # fmt: skip
        self._wander = rng.random() * math.tau
        self.load = self._per_second()

    def _per_second(self) -> list[Amps]:
        l1 = [self._base[0]] * DAY
        l2 = [self._base[1]] * DAY
        l3 = [self._base[2]] * DAY
        for event in self.events:
            a, b, c = event.amps
            for t in range(event.start, min(event.end, DAY)):
                l1[t] += a
                l2[t] += b
                l3[t] += c
        return list(zip(l1, l2, l3, strict=True))

    def at(self, t: int) -> Amps:
        return self.load[t % DAY]


class Sun:
    """What a PV system gives (W, spread over three phases): a bell from 7 to 19 h, with
    clouds that take most of it for a minute or ten."""

    def __init__(self, rng: random.Random, peak: float) -> None:
        self.peak = peak
        self.clouds: list[tuple[int, int, float]] = []
        for _ in range(rng.randrange(0, 25)):
            start = rng.randrange(7 * 3600, 19 * 3600)
            self.clouds.append((start, start + rng.randrange(60, 900), rng.uniform(0.2, 0.7)))

    def at(self, t: int) -> float:
        hour = (t % DAY) / 3600
        if not 7 <= hour <= 19:
            return 0.0
        watts = self.peak * math.sin(math.pi * (hour - 7) / 12)
        for start, end, left in self.clouds:
            if start <= t < end:
                watts *= left
        return watts


class Meter:
    """Publishes every ``period`` s, except while silent; now and then a bad payload."""

    def __init__(self, rng: random.Random, *, period: int, exports: bool) -> None:
        self.period = period
        self.exports = exports  # a meter that measures import only never goes below 0
        self.silent: list[tuple[int, int]] = []
        for _ in range(rng.randrange(1, 5)):
            start = rng.randrange(0, DAY - 600)
            self.silent.append((start, start + rng.randrange(40, 400)))
        self.broken: set[int] = {rng.randrange(0, DAY) // period * period
                                 for _ in range(rng.randrange(0, 4))}  # fmt: skip
        self.garbled: list[tuple[int, int]] = []  # spells of nothing but bad payloads
        self._rng = rng

    def outage(self, start: int, end: int, *, garbled: bool) -> None:
        """A long spell without a valid reading: silent, or publishing garbage."""
        (self.garbled if garbled else self.silent).append((start, end))

    def is_silent(self, t: int) -> bool:
        return any(start <= t < end for start, end in self.silent)

    def payload(self, t: int, grid: Amps) -> bytes | None:
        """What it publishes at second t, or None."""
        if t % self.period or self.is_silent(t):
            return None
        if t in self.broken or any(start <= t < end for start, end in self.garbled):
            return self._rng.choice([b'{"l1": NaN, "l2": 1, "l3": 1}', b'"12"', b"1e400",
                                     b'{"l1": 5000, "l2": 0, "l3": 0}'])  # fmt: skip
        noisy = [round(i + self._rng.gauss(0.0, 0.15), 2) for i in grid]
        if not self.exports:
            noisy = [max(0.0, i) for i in noisy]
        return json.dumps(dict(zip(("l1", "l2", "l3"), noisy, strict=True))).encode()
