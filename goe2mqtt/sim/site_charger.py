"""A simulated go-e charger and its cars, as a seeded site day sees them (sim/site_day.py).

It follows a new current after a realistic delay (the command's way, then the charger's
once-a-second logic and the car's own ramp); cars arrive, need energy and taper when
nearly full; it drops offline now and then; ``tcl`` expires after 10 minutes like the
firmware's.
"""

from __future__ import annotations

import random
from dataclasses import dataclass
from typing import Any

from goe2mqtt.sim.house import DAY, VOLTS, Amps

TCL_EXPIRY = 600
COMMAND_DELAY = (0.5, 2.0)  # s from a decision to the charger having the new value
CAR_DELAY = (1.0, 4.0)  # s for the charger's logic and the car to follow it
REACTION = COMMAND_DELAY[1] + CAR_DELAY[1]  # the longest a charger takes to follow


@dataclass
class Car:
    phases: tuple[int, ...]
    max_amps: float  # what its on-board charger takes at most
    need: float  # Wh still wanted
    capacity: float  # Wh from empty to full: tapering starts at 80 %
    charged: float = 0.0


class SimCharger:
    """A go-e charger as the site sees it: amp, tcl (expiring), frc, nrg, car."""

    def __init__(self, name: str, rng: random.Random, *, own_amp: int) -> None:
        self.name = name
        self.faulty_nrg = False  # its nrg shows phase 1's current only (a faulty meter)
        self.amp = own_amp  # the owner's setting: what applies without tcl
        self.tcl: int | None = None
        self.tcl_at = 0
        self.frc = 0
        self.car: Car | None = None
        self.draw = 0.0  # A on each of the car's phases
        self._wanted = 0.0
        self._change_at: float | None = None
        self._pending: list[tuple[float, dict[str, int | None]]] = []
        self.offline: list[tuple[int, int]] = []
        self.arrivals: list[int] = sorted(rng.randrange(0, DAY - 3600)
                                          for _ in range(rng.randrange(1, 4)))  # fmt: skip
        for _ in range(rng.randrange(0, 3)):
            start = rng.randrange(0, DAY - 600)
            self.offline.append((start, start + rng.randrange(30, 240)))
        self._rng = rng
        self.written: list[tuple[int, dict[str, int | None]]] = []
        self.delivered = 0.0  # Wh

    def online(self, t: int) -> bool:
        return not any(start <= t < end for start, end in self.offline)

    def limit(self) -> int:
        return self.amp if self.tcl is None else min(self.amp, self.tcl)

    def send(self, t: int, call: dict[str, int | None]) -> None:
        """A write from the site: it reaches the charger after the command's delay."""
        self.written.append((t, call))
        self._pending.append((t + self._rng.uniform(*COMMAND_DELAY), call))

    def step(self, t: int) -> None:
        if self.arrivals and t >= self.arrivals[0] and self.car is None:
            self.arrivals.pop(0)
            three = self._rng.random() < 0.6
            self.car = Car(
                phases=(0, 1, 2) if three else (0,),
                max_amps=self._rng.choice([16.0, 16.0, 32.0] if three else [16.0, 20.0, 32.0]),
                need=self._rng.uniform(5_000, 40_000),
                capacity=self._rng.uniform(40_000, 80_000),
            )
            self.car.charged = self.car.capacity - self.car.need
        if self.online(t):
            for due, call in [p for p in self._pending if p[0] <= t]:
                self._pending.remove((due, call))
                for key, value in call.items():
                    if key == "tcl":
                        self.tcl, self.tcl_at = value, t
                    elif key == "amp" and value is not None:
                        self.amp = value
                    elif key == "frc" and value is not None:
                        self.frc = value
        if self.tcl is not None and t - self.tcl_at >= TCL_EXPIRY:
            self.tcl = None  # the firmware drops a temporary limit not refreshed
        wanted = self._allowed()
        if wanted != self._wanted:
            self._wanted = wanted
            if self._change_at is None:  # a taper moves it every second: from the first
                self._change_at = t + self._rng.uniform(*CAR_DELAY)
        if self._change_at is not None and t >= self._change_at:
            self.draw, self._change_at = self._wanted, None
        car = self.car
        if car is not None and self.draw:
            energy = self.draw * VOLTS * len(car.phases) / 3600
            car.charged += energy
            self.delivered += energy
            if car.charged >= car.capacity * 0.999:
                self.car = None  # full: the owner unplugs it
                self.draw, self._wanted, self._change_at = 0.0, 0.0, None

    def _allowed(self) -> float:
        car = self.car
        if car is None or self.frc == 1:
            return 0.0
        soc = car.charged / car.capacity
        taper = 1.0 if soc < 0.8 else max(0.15, (1.0 - soc) / 0.2)
        return float(min(self.limit(), car.max_amps * taper))

    def currents(self) -> Amps:
        car = self.car
        if car is None:
            return (0.0, 0.0, 0.0)
        a, b, c = (self.draw if p in car.phases else 0.0 for p in range(3))
        return (a, b, c)

    def status(self) -> dict[str, Any]:
        currents = self.currents()
        shown = (currents[0], 0.0, 0.0) if self.faulty_nrg else currents
        charging = self.car is not None and self._allowed() > 0 and self.draw > 0
        car = 1 if self.car is None else 2 if charging or self._wanted > 0 else 4
        return {
            "car": car, "amp": self.amp, "tcl": self.tcl, "frc": self.frc, "psm": 0,
            "mca": 6, "ama": 32, "nrg": [230, 231, 229, 0, *shown, 0, 0, 0, 0, 0],
        }  # fmt: skip
