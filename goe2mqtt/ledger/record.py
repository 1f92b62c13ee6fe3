"""One session on the books: what is stored, published and exported.

Energy is the total counter's end minus its start (immune to `wh` resets and the
per-card counters' bugs); `charger_wh`, the charger's own session figure, is kept
beside it as a cross-check. A flagged session keeps its energy but is never priced.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from goe2mqtt.util.values import iso

# How a session ended.
UNPLUGGED = "unplugged"
CHARGER_RESTARTED = "charger_restarted"
COUNTER_JUMP = "counter_jump"
BRIDGE_GAP = "bridge_gap"  # the bridge was away when it ended: its end is when last seen
# Open when the bridge stopped, its charger no longer this bridge's (removed from the
# config, or moved to another shard): closed at the next start, as last seen.
CHARGER_REMOVED = "charger_removed"
END_REASONS = (UNPLUGGED, CHARGER_RESTARTED, COUNTER_JUMP, BRIDGE_GAP, CHARGER_REMOVED)

# The exported columns, in order (README "Session ledger" documents each).
COLUMNS = (
    "id", "charger", "serial", "start", "end", "duration_s", "energy_wh", "charger_wh",
    "energy_grid_wh", "energy_pv_wh", "cost", "currency", "peak_power_w", "phases",
    "card_slot", "card", "ended", "flagged", "flags",
)  # fmt: skip
# What `goe2mqtt sessions --summary` totals by (ledger/report.py does the totalling).
SUMMARIES = ("month,card", "month,charger")


def cents(amount: float) -> float:
    """A cost as shown and totalled: 2 decimals (+ 0.0: a cost under half a cent below
    zero, at a negative price, rounds to -0.0, which JSON shows as -0.0)."""
    return round(amount, 2) + 0.0


def new_id(charger: str, started: float) -> str:
    """Unique across chargers and restarts, and readable: garage-20261206T051500Z-1a2b3c4d."""
    stamp = datetime.fromtimestamp(started, UTC).strftime("%Y%m%dT%H%M%SZ")
    return f"{charger}-{stamp}-{uuid.uuid4().hex[:8]}"


@dataclass
class Session:
    id: str
    charger: str
    serial: str | None
    started: float  # unix time (UTC)
    eto_start: float | None  # None: the counter was unreadable at the start
    eto_last: float | None
    seen_at: float  # unix time of the last reading counted
    currency: str
    priced: bool  # False: no tariff configured, the session has no cost
    reboots: int | None = None  # the charger's rbc when the session opened
    ended: float | None = None
    end_reason: str | None = None
    charger_wh: float | None = None
    energy_grid_wh: float = 0.0
    energy_pv_wh: float = 0.0
    cost_so_far: float = 0.0
    unpriced_wh: float = 0.0  # grid energy waiting for the first price (none heard yet)
    peak_power_w: float | None = None
    phases: int | None = None
    card_slot: int | None = None
    card: str = "none"
    flags: list[str] = field(default_factory=list)
    announced: bool = False  # session/ended acknowledged by the broker
    # The charger's lccfi when the car connected (ms since its boot): which connection
    # this is, to tell after a restart of the bridge whether it is still the same car.
    connected_ms: int | None = None

    @property
    def open(self) -> bool:
        return self.ended is None

    @property
    def energy_wh(self) -> float | None:
        if self.eto_start is None or self.eto_last is None:
            return None
        return self.eto_last - self.eto_start

    @property
    def flagged(self) -> bool:
        return bool(self.flags)

    @property
    def cost(self) -> float | None:
        """None when not priced: no tariff, a flag, or energy that met no price (yet).
        In cents, as it is shown: the sessions' costs add up to the month's (a total of
        unrounded costs drifts from the sum of what the export shows, a cent a few
        sessions)."""
        if not self.priced or self.flagged or self.unpriced_wh > 0.5:
            return None
        return cents(self.cost_so_far)

    def flag(self, reason: str) -> bool:
        if reason in self.flags:
            return False
        self.flags.append(reason)
        return True

    def public(self, now: float | None = None) -> dict[str, Any]:
        """The record as MQTT, JSON and CSV show it."""
        end = self.ended if self.ended is not None else now
        energy = self.energy_wh
        return {
            "id": self.id,
            "charger": self.charger,
            "serial": self.serial,
            "start": iso(self.started),
            "end": iso(self.ended),
            "duration_s": None if end is None else round(max(0.0, end - self.started)),
            "energy_wh": None if energy is None else round(energy, 1),
            "charger_wh": None if self.charger_wh is None else round(self.charger_wh, 1),
            "energy_grid_wh": round(self.energy_grid_wh, 1),
            "energy_pv_wh": round(self.energy_pv_wh, 1),
            "cost": self.cost,
            "currency": self.currency,
            "peak_power_w": self.peak_power_w,
            "phases": self.phases,
            "card_slot": self.card_slot,
            "card": self.card,
            "ended": self.end_reason,
            "flagged": self.flagged,
            "flags": list(self.flags),
        }
