"""The PV surplus feed: your meter's grid, PV and battery power, kept alive in the charger.

The charger's PV logic needs `ids` ({"pGrid", "pPv", "pAkku"} in W) from an energy
manager, and forgets it after a few seconds. A PvFeed takes readings from MQTT (one
JSON topic, or one plain number per value), writes them, and writes the latest again
every `interval` while the source keeps talking; when it falls quiet for `timeout`
the feed stops (a stale reading would steer charging wrongly) and says so.

Readings are measurements, not commands: they are not journaled, no result is
published for a good one (a feed every few seconds would flood the result topic),
and a bad one is refused with its reason like any command. The charger reports
what it holds as pgrid/ppv/pakku: that is how a feed is confirmed.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import math
import time
from collections import deque
from collections.abc import Awaitable, Callable, Mapping
from typing import Any

import structlog

from goe2mqtt.catalogue.pv import MAX_POWER
from goe2mqtt.commands.payloads import CommandError, check_fresh, parse_timestamp
from goe2mqtt.util.numbers import finite_number, lenient_number

log = structlog.get_logger()

FEED_INTERVAL = 5.0  # s between writes of the same reading (the charger keeps ids ~10 s)
FEED_TIMEOUT = 30.0  # s without a reading before the feed stops
MIN_GAP = 1.0  # s between writes: the charger's logic reads ids once a second
# A reading counts as shown when the charger's value is this close (it keeps floats).
TOLERANCE_W = 1.0

# Inputs: the JSON topic, and one plain-number topic per field.
FEED_TOPIC = "pv_feed"
FIELD_TOPICS = {"pv_grid": "pGrid", "pv_solar": "pPv", "pv_battery": "pAkku"}
INPUT_SERVICES = frozenset({FEED_TOPIC, *FIELD_TOPICS})
# Each fed field: the status key the charger reports it back as, and the added key
# that holds what we fed.
REPORTED_AS = {"pGrid": "pgrid", "pPv": "ppv", "pAkku": "pakku"}
FEED_KEYS = {"pGrid": "@pv_grid", "pPv": "@pv_solar", "pAkku": "@pv_battery"}

Sender = Callable[[dict[str, float]], Awaitable[None]]


def _power(field: str, value: Any) -> float | None:
    if value is None:
        return None
    value = finite_number(lenient_number(value))
    if value is None:
        raise CommandError(f"{field} must be a number of watts")
    low = 0.0 if field == "pPv" else -MAX_POWER
    if not low <= value <= MAX_POWER:
        raise CommandError(f"{field} must be between {low:.0f} and {MAX_POWER:.0f} W")
    return float(value)


def parse_reading(service: str, payload: bytes, *, max_age: float) -> dict[str, Any]:
    """The fields one message gives (a None value clears that field); CommandError if bad."""
    try:
        value = json.loads(payload.decode("utf-8").strip() or "null")
    except (UnicodeDecodeError, ValueError, RecursionError):
        raise CommandError(f"{service}: payload is not a number or JSON") from None
    if service in FIELD_TOPICS:
        field = FIELD_TOPICS[service]
        if isinstance(value, dict):
            value = value.get("value")
        return {field: _power(field, value)}
    if not isinstance(value, dict):
        raise CommandError('pv_feed takes {"pGrid": W, "pPv": W, "pAkku": W}')
    value.pop("id", None)
    if "ts" in value:
        check_fresh(parse_timestamp(value.pop("ts")), now=time.time(), max_age=max_age)
    unknown = sorted(set(value) - set(REPORTED_AS))
    if unknown:
        raise CommandError(f"pv_feed: unknown field {unknown[0]!r} (pGrid, pPv, pAkku)")
    if value.get("pGrid") is None:
        raise CommandError("pv_feed: pGrid is required (W, negative = export)")
    return {field: _power(field, value.get(field)) for field in REPORTED_AS}


class PvFeed:
    """One charger's feed: the latest reading, the resend loop and how it is going."""

    def __init__(
        self,
        charger: str,
        send: Sender,
        on_change: Callable[[], None],
        *,
        interval: float = FEED_INTERVAL,
        timeout: float = FEED_TIMEOUT,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._charger = charger
        self._send = send
        self._on_change = on_change
        self.interval = interval
        self.timeout = timeout
        self._clock = clock
        self._values: dict[str, float] = {}
        self._heard: dict[str, float] = {}  # field -> when its last reading came
        self.state = "off"
        self._sent: deque[dict[str, float]] = deque(maxlen=4)  # recent writes, to confirm
        self._streak_started: float | None = None  # first write since the feed (re)started
        self._last_sent = -math.inf
        self._last_match = -math.inf
        self._changed = asyncio.Event()
        self._stopping = False
        self.writes = 0

    # --- inputs (called from the MQTT callback: no awaiting) ---------------------------

    def offer(self, service: str, payload: bytes, *, retained: bool) -> str | None:
        """Take one reading; the reason when it is refused."""
        if retained:
            return "retained reading ignored: publish PV readings without retain"
        try:
            fields = parse_reading(service, payload, max_age=self.timeout)
        except CommandError as exc:
            return str(exc)
        now = self._clock()
        for field, value in fields.items():
            if value is None:
                self._values.pop(field, None)
            else:
                self._values[field] = value
            self._heard[field] = now
        self._changed.set()
        return None

    def states(self) -> dict[str, Any]:
        """The added keys the catalogue's PV feed entities read."""
        values = self._values if self.state not in ("off", "stale") else {}
        return {"@pv_feed": self.state, **{FEED_KEYS[f]: values.get(f) for f in FEED_KEYS}}

    def grid(self) -> float | None:
        """The house meter's grid power now (W, import positive), while the feed runs."""
        return self._values.get("pGrid") if self.state not in ("off", "stale") else None

    # --- confirmation: what the charger shows -------------------------------------------

    def observe(self, status: Mapping[str, Any]) -> None:
        """After a poll: does the charger show one of our recent writes?"""
        # Not by the state: the first write's is still "off" (or "stale") while its answer
        # is awaited, and a pushing charger shows it in a delta that may come first - once,
        # as pgrid changed. Nothing is sent while the feed is off or stale.
        if not self._sent:
            return
        if any(self._shown(sent, status) for sent in self._sent):
            self._last_match = self._clock()
        self._settle()

    @staticmethod
    def _shown(sent: Mapping[str, float], status: Mapping[str, Any]) -> bool:
        for field, value in sent.items():
            shown = finite_number(status.get(REPORTED_AS[field]))
            if shown is None:
                return False
            if abs(shown - value) > max(TOLERANCE_W, abs(value) * 0.001):
                return False
        return True

    def _settle(self) -> None:
        now = self._clock()
        grace = 3 * self.interval  # cloud data lags: give the charger a few rounds
        if now - self._last_match <= grace:
            state = "confirmed"
        elif self._streak_started is not None and now - self._streak_started <= grace:
            state = "sending"
        else:
            state = "not_applied"
        if state == "not_applied" and self.state != "not_applied":
            log.warning(
                "pv_feed_not_applied",
                charger=self._charger,
                reason="the charger does not show the values written to ids",
            )
        self._set_state(state)

    def _set_state(self, state: str) -> None:
        if state != self.state:
            self.state = state
            self._on_change()

    # --- the resend loop ---------------------------------------------------------------

    def stop(self) -> None:
        self._stopping = True
        self._changed.set()

    def _fresh(self, now: float) -> dict[str, float]:
        """The reading to write now: pGrid is needed, the others only while fresh."""
        return {
            field: value
            for field, value in self._values.items()
            if now - self._heard.get(field, -math.inf) <= self.timeout
        }

    async def run(self) -> None:
        while not self._stopping:
            now = self._clock()
            reading = self._fresh(now)
            if "pGrid" not in reading:
                if self.state not in ("off", "stale"):
                    log.warning(
                        "pv_feed_stale",
                        charger=self._charger,
                        reason=f"no pGrid reading for {self.timeout:.0f} s: stopped",
                    )
                    self._streak_started = None
                    self._sent.clear()
                    self._set_state("stale")
                self._changed.clear()
                await self._wait(None)
                continue
            changed = not self._sent or reading != self._sent[-1]
            due = self._last_sent + (MIN_GAP if changed else self.interval)
            if now >= due:
                await self._write(reading, now)
                continue
            self._changed.clear()
            stale_at = min(self._heard[field] for field in reading) + self.timeout
            await self._wait(min(due, stale_at + 0.01) - now)

    async def _wait(self, seconds: float | None) -> None:
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self._changed.wait(), seconds)

    async def _write(self, reading: dict[str, float], now: float) -> None:
        self._last_sent = now
        if self._streak_started is None:
            self._streak_started = now
            log.info("pv_feed_started", charger=self._charger, interval=self.interval)
        # Known before it is sent: a pushing charger may show it before the answer
        # to the write is read (the delta that shows it comes right behind it).
        sent = dict(reading)
        self._sent.append(sent)
        try:
            await self._send(reading)
        except Exception as exc:  # the charger's errors: the next round tries again
            with contextlib.suppress(ValueError):
                self._sent.remove(sent)
            if self.state != "failed":
                log.warning("pv_feed_failed", charger=self._charger, reason=str(exc))
            self._set_state("failed")
            return
        self.writes += 1
        if self.state in ("off", "stale", "failed"):
            self._set_state("sending")
