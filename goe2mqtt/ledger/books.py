"""The ledger of a bridge: each charger's tracker, the store, and what to publish.

The charger loop hands each status it accepts to its ChargerBooks (no awaiting:
the books are synchronous and cheap, they write nothing themselves). Openings and
closings are committed at once by the publisher, before it publishes anything of
them (those of one wake-up in one commit: a fleet starting with its cars plugged in
costs a few fsyncs, not one each); progress at most every PROGRESS_EVERY per charger,
every charger's in one commit. What to publish - the session topic, session/ended -
is queued here for the bridge's publisher (bridge/ledger_out.py); a session leaves
the ended queue when the broker acknowledged it, so a crash before that publishes it
again (same id), once.
"""

from __future__ import annotations

import heapq
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
from goe2mqtt.ledger.horizon import PruneHorizon
from goe2mqtt.ledger.pricing import TopicPrice, month_start, pricing_for, zone
from goe2mqtt.ledger.readings import read
from goe2mqtt.ledger.record import CHARGER_REMOVED, Session
from goe2mqtt.ledger.store import SessionStore
from goe2mqtt.ledger.tracker import Step, Tracker

log = structlog.get_logger()

CARD_MONTH_KEYS = tuple(card_month_key(slot) for slot in range(CARD_SLOTS))

PROGRESS_EVERY = 60.0  # s: an open session's progress is written at most this often
PROGRESS_BATCH = 1000  # sessions per progress commit at most (~0.1 s of writing)
SESSION_TOPIC_EVERY = 10.0  # s: the retained session topic, at most this often while it flows
PRICE_REFUSALS_SAID_EVERY = 60.0  # s: one price_refused line a topic at most


class ChargerBooks:
    """One charger's sessions: fed statuses, it keeps the tracker, the month's totals
    and the added keys the catalogue's session entities read."""

    def __init__(self, ledger: Ledger, name: str, tariff: TariffSettings) -> None:
        self.ledger = ledger
        self.name = name
        self.currency = tariff.currency
        self.tz: tzinfo | None = zone(tariff.timezone)
        store = ledger.store
        resumed = ledger.resumed.pop(name, None)
        self.tracker = Tracker(
            name,
            currency=tariff.currency,
            pricing=pricing_for(tariff, ledger.price_topics),
            pv_price=tariff.pv_price_per_kwh,
            resumed=resumed,
        )
        self.last: Session | None = store.last_closed(name)
        self._month_start = self._month_end = 0.0
        # Closed sessions this month: Wh, cost, Wh per card slot.
        self._month: tuple[float, float, dict[int, float]] = (0.0, 0.0, {})
        self._states: dict[str, Any] = dict(SESSION_OFF)
        self._settled: dict[str, Any] = dict(SESSION_OFF)
        self.progress_due = False  # counted since the last write
        self.written_at = -PROGRESS_EVERY  # monotonic: the last progress write
        self.topic_changed = True  # the session topic has news
        self.topic_urgent = True  # ... to go out now (opened, closed), not within 10 s
        ledger.topic_news[name] = None
        self._refresh_states(ledger.clock(), settled=True)

    @property
    def open(self) -> Session | None:
        return self.tracker.open

    def observe(self, status: Mapping[str, Any], *, serial: str | None,
                grid_w: float | None = None) -> None:  # fmt: skip
        now, mono = self.ledger.clock(), self.ledger.monotonic()
        step = self.tracker.observe(read(status), now=now, mono=mono, serial=serial, grid_w=grid_w)
        if step.replugged is not None:
            log.info(
                "session_replugged", charger=self.name, reason=step.replugged,
                effect="the session resumed from before the restart ended meanwhile",
            )  # fmt: skip
        if step.closed or step.opened or step.flagged:
            self.ledger.store_at_once(self, step)
        elif step.counted:
            self.progress_due = True
            self.topic_changed = True
            self.ledger.topic_news[self.name] = None
        if step.closed:
            self.last = step.closed[-1]
            self._month_add(step.closed)
        # A new month (or a clock stepped back into an old one) starts the month's totals
        # afresh, though nothing else changed.
        changed = step.closed or step.opened or step.counted or step.flagged
        if changed or not self._month_start <= now < self._month_end:
            self._refresh_states(now, settled=bool(step.closed))

    # --- the added keys ----------------------------------------------------------------

    def states(self) -> Mapping[str, Any]:
        return self._states

    def _refresh_month(self, now: float) -> bool:
        """Whether a new month began (its totals then read from the store)."""
        if self._month_start <= now < self._month_end:
            return False  # the common case: no date arithmetic per status
        self._month_start = month_start(now, self.tz)
        self._month_end = month_start(self._month_start + 32 * 86_400, self.tz)
        self._month = self.ledger.store.totals_since(self.name, self._month_start, self._month_end)
        return True

    def _month_add(self, closed: list[Session]) -> None:
        energy, cost, per_card = self._month
        for session in closed:
            if not self._month_start <= session.started < self._month_end:
                continue
            wh = session.energy_wh or 0.0
            energy += wh
            cost += session.cost or 0.0
            if session.card_slot is not None:
                per_card = {**per_card, session.card_slot: per_card.get(session.card_slot, 0) + wh}
        self._month = (energy, cost, per_card)

    def _refresh_states(self, now: float, *, settled: bool) -> None:
        """The added keys. What only a closing (or a new month) changes is built then
        (``settled``); a counted status updates the open session's few keys."""
        if self._refresh_month(now) or settled:
            self._settled = self._settled_states()
        states = dict(self._settled)
        session = self.open
        priced = self.tracker.pricing is not None
        if session is not None:
            states[SESSION_ENERGY] = _kwh(session.energy_wh or 0.0)
            states[SESSION_COST] = _money(session.cost)
        if session is not None and self._month_start <= session.started < self._month_end:
            # A session counts in the month it started (as when it is closed): one
            # from last month adding to this one would drop out at its end, and Home
            # Assistant would take the drop for a reset.
            energy, cost, per_card = self._month
            wh = session.energy_wh or 0.0
            states[MONTH_ENERGY] = _kwh(energy + wh)
            states[MONTH_COST] = _money(cost + (session.cost or 0.0)) if priced else None
            if session.card_slot is not None:
                states[CARD_MONTH_KEYS[session.card_slot]] = _kwh(
                    per_card.get(session.card_slot, 0.0) + wh
                )
        self._states = states

    def _settled_states(self) -> dict[str, Any]:
        energy, cost, per_card = self._month
        last = self.last
        return {
            SESSION_ENERGY: _kwh(last.energy_wh) if last else None,
            SESSION_COST: _money(last.cost) if last else None,
            LAST_ENERGY: _kwh(last.energy_wh) if last else None,
            LAST_COST: _money(last.cost) if last else None,
            LAST_DURATION: round(last.ended - last.started) if last and last.ended else None,
            LAST_CARD: last.card if last else None,
            MONTH_ENERGY: _kwh(energy),
            # No tariff: no cost at all (unknown), rather than a month of zeros.
            MONTH_COST: _money(cost) if self.tracker.pricing is not None else None,
            **{key: _kwh(per_card.get(slot, 0.0)) for slot, key in enumerate(CARD_MONTH_KEYS)},
        }

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
        self.progress_every = progress_every
        self.clock = clock
        self.monotonic = monotonic
        self.price_topics: dict[str, TopicPrice] = {}
        # Price topic -> (when a refusal was last logged, refusals since): once a minute,
        # so anyone publishing garbage there in a loop is not a log line each.
        self._refusals_said: dict[str, tuple[float, int]] = {}
        self.books: dict[str, ChargerBooks] = {}
        # Chargers whose topic_changed was set since the publisher last took this (it
        # swaps in an empty one): it looks at those, not at every charger's books.
        self.topic_news: dict[str, None] = {}
        # The sessions open when the last run ended, read once (not once per charger).
        self.resumed = {s.charger: s for s in store.open_sessions()}
        # Closed sessions the broker has not acknowledged yet (a crash left some).
        self.ended: deque[Session] = deque(store.unannounced())
        self.on_news: Callable[[], None] = lambda: None  # the publisher's wake-up
        self._urgent: dict[str, Session] = {}  # to commit before anything is published
        self._closed: list[Session] = []  # ... of them the closed ones, for the ended queue
        self.horizon = PruneHorizon(store, keep_days=keep_days, clock=clock, monotonic=monotonic)

    def books_for(self, name: str, tariff: TariffSettings) -> ChargerBooks:
        books = self.books[name] = ChargerBooks(self, name, tariff)
        return books

    def close_removed(self) -> list[Session]:
        """After every owned charger has its books: the sessions still open of chargers
        this bridge no longer has (removed from the config, or now another shard's),
        closed with what is known - ended when last seen, the energy counted until then -
        rather than open forever. Committed and announced on session/ended as any
        closing. The closed sessions."""
        closed = [self.resumed.pop(name) for name in sorted(self.resumed)]
        for session in closed:
            session.ended = max(session.seen_at, session.started)
            session.end_reason = CHARGER_REMOVED
            self._urgent[session.id] = session
            self._closed.append(session)
            log.info(
                "session_ended", charger=session.charger, id=session.id,
                energy_wh=session.energy_wh, cost=session.cost, ended=session.end_reason,
                flags=session.flags or None,
            )  # fmt: skip
        if closed:
            self.on_news()
        return closed

    def offer_price(self, topic: str, payload: bytes) -> str | None:
        """A price from MQTT; the reason when it is refused (the last good one stays)."""
        price = self.price_topics.get(topic)
        if price is None:
            return f"{topic}: not a price topic"
        refused = price.offer(payload, self.clock())
        if refused is not None:
            now = self.monotonic()
            said_at, since = self._refusals_said.get(topic, (None, 0))
            since += 1
            if said_at is None or now - said_at >= PRICE_REFUSALS_SAID_EVERY:
                last = price.last
                log.warning(
                    "price_refused", topic=topic, reason=refused, times=since,
                    kept=None if last is None else last[1],
                    kept_age_s=None if last is None else round(self.clock() - last[0]),
                )  # fmt: skip
                said_at, since = now, 0
            self._refusals_said[topic] = (said_at, since)
        return refused

    def store_at_once(self, books: ChargerBooks, step: Step) -> None:
        """Opening, closing, a flag: noted for the next commit(), which the publisher
        makes before it publishes anything (the journal's rule: on disk first). Within
        one wake-up of it, a fleet's openings share one commit (one fsync)."""
        for session in (*step.closed, *step.opened):
            self._urgent[session.id] = session
        if books.open is not None:
            self._urgent[books.open.id] = books.open
        self._closed.extend(step.closed)
        books.topic_changed = books.topic_urgent = True
        self.topic_news[books.name] = None
        books.progress_due = False
        books.written_at = self.monotonic()
        for session in step.closed:
            log.info(
                "session_ended", charger=session.charger, id=session.id,
                energy_wh=session.energy_wh, cost=session.cost, ended=session.end_reason,
                flags=session.flags or None,
            )  # fmt: skip
        for session in step.opened:
            log.info("session_opened", charger=session.charger, id=session.id)
        self.on_news()

    def commit(self) -> int:
        """The openings, closings and flags noted since the last call, in one commit;
        the closed sessions then queue for session/ended. StoreUnusable when the disk
        refuses: they stay noted for the next call. How many were written."""
        if not self._urgent:
            return 0
        sessions = list(self._urgent.values())
        self.store.save(sessions)
        self._urgent.clear()
        self.ended.extend(self._closed)
        self._closed.clear()
        return len(sessions)

    def write_progress(self, *, everything: bool = False) -> int:
        """The open sessions' progress, in one commit: those not written for
        progress_every, the longest waiting first and at most PROGRESS_BATCH of them
        (``everything``: all, at stop); how many. A 10 000-charger fleet's sessions
        (~170 a second) thus go out a few hundred a call, not all in one long hold."""
        now = self.monotonic()
        due = [
            books for books in self.books.values()
            if books.progress_due and books.open is not None
            and (everything or now - books.written_at >= self.progress_every)
        ]  # fmt: skip
        if not everything and len(due) > PROGRESS_BATCH:
            due = heapq.nsmallest(PROGRESS_BATCH, due, key=lambda books: books.written_at)
        self.store.save_progress([b.open for b in due if b.open is not None])
        for books in due:
            books.progress_due = False
            books.written_at = now
        return len(due)

    def announced(self, session: Session) -> None:
        """The broker acknowledged session/ended: it is not published again."""
        session.announced = True
        self.store.announced(session.id)

    def prune(self) -> int:
        """Forget what ended keep_days ago (ledger/horizon.py: as time is seen to pass,
        not as the wall clock alone says). How many sessions went."""
        return self.horizon.prune()

    def keep_horizon(self) -> None:
        """The prune horizon moved on by the time seen to pass, into the file (at a stop)."""
        self.horizon.keep()
