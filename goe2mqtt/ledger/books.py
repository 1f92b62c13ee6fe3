"""The ledger of a bridge: each charger's tracker, the store, and what to publish.

The charger loop hands each status it accepts to its ChargerBooks (no awaiting:
the books are synchronous and cheap); opening and closing are stored at once,
progress at most every PROGRESS_EVERY per charger, all chargers' progress in one
commit. What to publish - the session topic, session/ended - is queued here for the
bridge's publisher (bridge/ledger_out.py); a session leaves the ended queue when the
broker acknowledged it, so a crash before that publishes it again (same id), once.
"""

from __future__ import annotations

import json
import time
from collections import deque
from collections.abc import Callable, Mapping
from datetime import tzinfo
from typing import Any

import structlog

from goe2mqtt.catalogue.codes import CARD_SLOTS
from goe2mqtt.catalogue.session import (
    LAST_CARD,
    LAST_COST,
    LAST_DURATION,
    LAST_ENERGY,
    MONTH_COST,
    MONTH_ENERGY,
    SESSION_COST,
    SESSION_ENERGY,
    SESSION_OFF,
    card_month_key,
)
from goe2mqtt.config.tariff import TariffSettings
from goe2mqtt.ledger.pricing import TopicPrice, month_start, pricing_for, zone
from goe2mqtt.ledger.readings import read
from goe2mqtt.ledger.record import Session
from goe2mqtt.ledger.store import SessionStore, StoreUnusable
from goe2mqtt.ledger.tracker import Step, Tracker

log = structlog.get_logger()

PROGRESS_EVERY = 60.0  # s: an open session's progress is written at most this often
SESSION_TOPIC_EVERY = 10.0  # s: the retained session topic, at most this often while it flows


class ChargerBooks:
    """One charger's sessions: fed statuses, it keeps the tracker, the month's totals
    and the added keys the catalogue's session entities read."""

    def __init__(self, ledger: Ledger, name: str, tariff: TariffSettings) -> None:
        self.ledger = ledger
        self.name = name
        self.currency = tariff.currency
        self.tz: tzinfo | None = zone(tariff.timezone)
        store = ledger.store
        resumed = next((s for s in store.open_sessions() if s.charger == name), None)
        self.tracker = Tracker(
            name,
            currency=tariff.currency,
            pricing=pricing_for(tariff, ledger.price_topics),
            pv_price=tariff.pv_price_per_kwh,
            resumed=resumed,
        )
        self.last: Session | None = store.last_closed(name)
        self._month_start = 0.0
        # Closed sessions this month: Wh, cost, Wh per card slot.
        self._month: tuple[float, float, dict[int, float]] = (0.0, 0.0, {})
        self._states: dict[str, Any] = dict(SESSION_OFF)
        self.progress_due = False  # counted since the last write
        self.written_at = -PROGRESS_EVERY  # monotonic: the last progress write
        self.topic_changed = True  # the session topic has news
        self.topic_urgent = True  # ... to go out now (opened, closed), not within 10 s
        self._refresh_month(time.time())

    @property
    def open(self) -> Session | None:
        return self.tracker.open

    def observe(self, status: Mapping[str, Any], *, serial: str | None,
                grid_w: float | None = None) -> None:  # fmt: skip
        now, mono = self.ledger.clock(), self.ledger.monotonic()
        step = self.tracker.observe(read(status), now=now, mono=mono, serial=serial, grid_w=grid_w)
        if step.closed or step.opened or step.flagged:
            try:
                self.ledger.store_at_once(self, step)
            except StoreUnusable as exc:
                # The books go on in memory; the next write tries again (and the
                # session is published all the same).
                self.progress_due = True
                log.error("ledger_write_failed", charger=self.name, reason=str(exc))
        elif step.counted:
            self.progress_due = True
            self.topic_changed = True
        if step.closed:
            self.last = step.closed[-1]
            self._month_add(step.closed)
        if step.closed or step.opened or step.counted or step.flagged:
            self._refresh_states(now)

    # --- the added keys ----------------------------------------------------------------

    def states(self) -> Mapping[str, Any]:
        return self._states

    def _refresh_month(self, now: float) -> None:
        start = month_start(now, self.tz)
        if start != self._month_start:
            self._month_start = start
            self._month = self.ledger.store.totals_since(self.name, start)

    def _month_add(self, closed: list[Session]) -> None:
        energy, cost, per_card = self._month
        for session in closed:
            if session.started < self._month_start:
                continue
            wh = session.energy_wh or 0.0
            energy += wh
            cost += session.cost or 0.0
            if session.card_slot is not None:
                per_card = {**per_card, session.card_slot: per_card.get(session.card_slot, 0) + wh}
        self._month = (energy, cost, per_card)

    def _refresh_states(self, now: float) -> None:
        self._refresh_month(now)
        energy, cost, per_card = self._month
        shown = self.open or self.last
        open_wh = (self.open.energy_wh or 0.0) if self.open is not None else 0.0
        open_cost = (self.open.cost or 0.0) if self.open is not None else 0.0
        last = self.last
        states: dict[str, Any] = {
            SESSION_ENERGY: _kwh(shown.energy_wh) if shown else None,
            SESSION_COST: _money(shown.cost) if shown else None,
            LAST_ENERGY: _kwh(last.energy_wh) if last else None,
            LAST_COST: _money(last.cost) if last else None,
            LAST_DURATION: round(last.ended - last.started) if last and last.ended else None,
            LAST_CARD: last.card if last else None,
            MONTH_ENERGY: _kwh(energy + open_wh),
            # No tariff: no cost at all (unknown), rather than a month of zeros.
            MONTH_COST: _money(cost + open_cost) if self.tracker.pricing is not None else None,
        }
        open_slot = self.open.card_slot if self.open is not None else None
        for slot in range(CARD_SLOTS):
            wh = per_card.get(slot, 0.0) + (open_wh if slot == open_slot else 0.0)
            states[card_month_key(slot)] = _kwh(wh)
        self._states = states

    # --- the session topic ---------------------------------------------------------------

    def session_payload(self) -> str | None:
        """The retained session topic's JSON: the open session, else the last one."""
        shown = self.open or self.last
        if shown is None:
            return None
        return json.dumps(
            {**shown.public(self.ledger.clock()), "open": shown.open},
            ensure_ascii=False, allow_nan=False, sort_keys=True,
        )  # fmt: skip


def _kwh(wh: float | None) -> float | None:
    return None if wh is None else round(wh / 1000, 3)


def _money(value: float | None) -> float | None:
    return None if value is None else round(value, 2)


class Ledger:
    """Every owned charger's books over one store."""

    def __init__(
        self,
        store: SessionStore,
        *,
        keep_days: int = 3650,
        progress_every: float = PROGRESS_EVERY,
        clock: Callable[[], float] = time.time,
        monotonic: Callable[[], float] = time.monotonic,
    ) -> None:
        self.store = store
        self.keep_days = keep_days
        self.progress_every = progress_every
        self.clock = clock
        self.monotonic = monotonic
        self.price_topics: dict[str, TopicPrice] = {}
        self.books: dict[str, ChargerBooks] = {}
        # Closed sessions the broker has not acknowledged yet (a crash left some).
        self.ended: deque[Session] = deque(store.unannounced())
        self.on_news: Callable[[], None] = lambda: None  # the publisher's wake-up
        self._unsaved: list[Session] = []  # closed while the disk refused: written next

    def books_for(self, name: str, tariff: TariffSettings) -> ChargerBooks:
        books = self.books[name] = ChargerBooks(self, name, tariff)
        return books

    def offer_price(self, topic: str, payload: bytes) -> str | None:
        """A price from MQTT; the reason when it is refused (the last good one stays)."""
        price = self.price_topics.get(topic)
        if price is None:
            return f"{topic}: not a price topic"
        refused = price.offer(payload, self.clock())
        if refused is not None:
            last = price.last
            log.warning(
                "price_refused", topic=topic, reason=refused,
                kept=None if last is None else last[1],
                kept_age_s=None if last is None else round(self.clock() - last[0]),
            )  # fmt: skip
        return refused

    def store_at_once(self, books: ChargerBooks, step: Step) -> None:
        """Opening, closing, a flag: committed now (the journal's rule). StoreUnusable
        when the disk refuses: they are kept and written with the next progress."""
        sessions = [*step.closed, *step.opened]
        if books.open is not None and books.open not in sessions:
            sessions.append(books.open)
        books.topic_changed = books.topic_urgent = True
        self.ended.extend(step.closed)
        for session in step.closed:
            log.info(
                "session_ended", charger=session.charger, id=session.id,
                energy_wh=session.energy_wh, cost=session.cost, ended=session.end_reason,
                flags=session.flags or None,
            )  # fmt: skip
        for session in step.opened:
            log.info("session_opened", charger=session.charger, id=session.id)
        self.on_news()
        try:
            self.store.save(sessions)
        except StoreUnusable:
            self._unsaved.extend(s for s in sessions if not s.open)
            raise
        books.progress_due = False
        books.written_at = self.monotonic()

    def write_progress(self, *, everything: bool = False) -> int:
        """The open sessions' progress, every charger's in one commit: those not written
        for progress_every (``everything``: all, at stop); how many."""
        now = self.monotonic()
        due = [
            books for books in self.books.values()
            if books.progress_due and books.open is not None
            and (everything or now - books.written_at >= self.progress_every)
        ]  # fmt: skip
        self.store.save([*self._unsaved, *(b.open for b in due if b.open is not None)])
        self._unsaved.clear()
        for books in due:
            books.progress_due = False
            books.written_at = now
        return len(due)

    def announced(self, session: Session) -> None:
        """The broker acknowledged session/ended: it is not published again."""
        session.announced = True
        self.store.announced(session.id)

    def prune(self) -> int:
        return self.store.prune(self.clock() - self.keep_days * 86_400)
