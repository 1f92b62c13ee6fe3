"""The ledger on MQTT: each charger's session topic, session/ended, the price topics.

{base}/{name}/session is retained: the open session (or the last one), at once when
one opens or closes and at most every SESSION_TOPIC_EVERY while energy flows.
{base}/{name}/session/ended is QoS 2, not retained, one message per session: a
session leaves the ledger's queue when the broker acknowledged it, so after a crash
only the unacknowledged ones go out again, with their ids; it is sent from a task of
its own, so a broker that never acknowledges holds up nothing else. The ledger's
writes are made here: openings and closings first, at once, before anything of them
is published; the open sessions' progress in batches (at most every 60 s each).
"""

from __future__ import annotations

import asyncio
import contextlib
import heapq
import json
import time
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import Protocol

import structlog

from goe2mqtt.config.settings import Settings
from goe2mqtt.ledger.books import SESSION_TOPIC_EVERY, Ledger
from goe2mqtt.ledger.store import SessionStore, StoreUnusable
from goe2mqtt.mqtt.client import PublishRefused
from goe2mqtt.mqtt.topics import Topics
from goe2mqtt.util.aio import wait_until_set

log = structlog.get_logger()

PROGRESS_CHECK = 5.0  # s between looks for progress due (each charger's every 60 s)
# s a stop waits for a session/ended on its way (its PUBCOMP, then the note that it went):
# cut off, it would go out again at the next start. Under the stop's 1 s between cancels.
ENDED_GRACE = 0.5
PRUNE_EVERY = 86_400.0
# s after a start to the first prune: a bridge restarted more often than PRUNE_EVERY
# (nightly, by an updater) still prunes, and a box without a battery clock has had time
# for NTP (a prune on a clock still in 1970, with no session on the books to show it
# behind, would hold the horizon back for decades; Ledger._advanced).
PRUNE_FIRST = 3600.0


class Publisher(Protocol):
    @property
    def connected(self) -> bool: ...

    async def publish_retained(self, topic: str, payload: str | bytes) -> None: ...

    async def publish_once(self, topic: str, payload: str | bytes) -> None: ...


def sessions_path(settings: Settings) -> Path:
    """{state_dir}/{client_id}.sessions: the ledger, beside the journal."""
    return Path(settings.state_dir) / f"{settings.mqtt.client_id}.sessions"


def price_topics(settings: Settings) -> set[str]:
    """The MQTT topics the owned chargers' tariffs take their price from."""
    return {
        tariff.price_topic for c in settings.owned_chargers()
        if (tariff := settings.tariff_for(c)).price_topic is not None
    }  # fmt: skip


class TopicPace:
    """Which chargers' session topics go out now: of those with news, the urgent ones
    and those last sent SESSION_TOPIC_EVERY ago; the rest wait in a queue by when they
    were last sent, and go out once that is SESSION_TOPIC_EVERY ago. Each look touches
    the chargers with news and those whose wait is over, not every charger's books
    (~1 % of a core at 10 000 chargers, each second)."""

    def __init__(self, every: float = SESSION_TOPIC_EVERY) -> None:
        self._every = every
        self._sent_at: dict[str, float] = {}  # charger -> monotonic, last sent
        self._waiting: dict[str, float] = {}  # charger -> its _sent_at when queued
        self._queue: list[tuple[float, str]] = []  # (sent at, charger), a heap

    def due(self, news: Iterable[tuple[str, bool]], now: float) -> list[str]:
        """The chargers to publish, of ``news`` ((charger, urgent) with news since the
        last call) and of those waiting; call sent() for each one published."""
        ready: dict[str, None] = {}
        queue, waiting = self._queue, self._waiting
        while queue and now - queue[0][0] >= self._every:
            sent_at, name = heapq.heappop(queue)
            if waiting.get(name) == sent_at:  # else sent meanwhile: a stale entry
                del waiting[name]
                ready[name] = None
        for name, urgent in news:
            sent_at = self._sent_at.get(name, 0.0)
            if urgent or now - sent_at >= self._every:
                ready[name] = None
            elif name not in waiting:
                waiting[name] = sent_at
                heapq.heappush(queue, (sent_at, name))
        return list(ready)

    def sent(self, name: str, now: float) -> None:
        self._sent_at[name] = now
        self._waiting.pop(name, None)  # its queue entry is stale now


class LedgerOutput:
    """The bridge's ledger (opened with open()) and what it publishes."""

    def __init__(self, topics: Topics, clock: Callable[[], float] = time.time) -> None:
        self.topics = topics
        self._clock = clock
        self._ledger: Ledger | None = None
        self._news = asyncio.Event()
        self._ended_news = asyncio.Event()  # closed sessions on disk, for session/ended
        self._pace = TopicPace()
        self._failing: str | None = None  # why the last write failed; None: it did not
        self._announcing: str | None = None  # the session/ended on its way (its id)

    def open(self, settings: Settings) -> Ledger:
        """The ledger's file in state_dir; StoreUnusable if it cannot be opened."""
        store = SessionStore(sessions_path(settings))
        self._ledger = Ledger(store, keep_days=settings.sessions.keep_days, clock=self._clock)
        self._ledger.on_news = self._news.set
        return self._ledger

    @property
    def ledger(self) -> Ledger:
        assert self._ledger is not None, "the ledger opens in Bridge.run()"
        return self._ledger

    def close(self) -> None:
        if self._ledger is not None:
            self._ledger.store.close()

    async def run(self, mqtt: Publisher, stop: asyncio.Event) -> None:
        # session/ended waits for the broker's PUBCOMP, which a frozen broker never
        # sends: in a task of its own, so the books still reach the disk meanwhile.
        announcing = asyncio.create_task(self._announce(mqtt, stop), name="ledger-ended")
        try:
            await self._keep(mqtt, stop)
        finally:
            if self._announcing is not None:
                # One on its way: let its PUBCOMP come and be noted (bounded).
                await asyncio.wait({announcing}, timeout=ENDED_GRACE)
            announcing.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await announcing

    async def _announce(self, mqtt: Publisher, stop: asyncio.Event) -> None:
        while not stop.is_set():
            self._ended_news.clear()
            await self._ended(mqtt)
            await wait_until_set(self._ended_news, 1.0)  # or the broker may be back

    async def _keep(self, mqtt: Publisher, stop: asyncio.Event) -> None:
        progress_at = time.monotonic()
        pruned_at = progress_at - PRUNE_EVERY + PRUNE_FIRST
        while not stop.is_set():
            self._news.clear()
            if not self._commit():
                await wait_until_set(stop, 1.0)  # the disk refuses: try again in a second
                continue
            if self.ledger.ended:
                self._ended_news.set()
            await self._session_topics(mqtt)
            now = time.monotonic()
            if now - progress_at >= PROGRESS_CHECK:
                progress_at = now
                self._write_progress()
            if now - pruned_at >= PRUNE_EVERY:
                pruned_at = now
                self._prune()
            await wait_until_set(self._news, 1.0)

    def finish(self) -> None:
        """On stop: what is noted, every open session's progress, and the prune
        horizon moved on by the time this run saw pass, to disk."""
        self._commit()
        self._write_progress(everything=True)
        try:
            self.ledger.keep_horizon()
        except StoreUnusable as exc:
            self._failed(exc)

    def _commit(self) -> bool:
        """Openings and closings on disk before anything about them is published."""
        try:
            written = self.ledger.commit()
        except StoreUnusable as exc:
            self._failed(exc)
            return False
        if written:
            self._written()
        return True

    def _write_progress(self, *, everything: bool = False) -> None:
        try:
            written = self.ledger.write_progress(everything=everything)
        except StoreUnusable as exc:
            self._failed(exc)
            return
        if written:
            self._written()

    def _prune(self) -> None:
        try:
            self.ledger.prune()
        except StoreUnusable as exc:
            self._failed(exc)
            return
        self._written()

    def _failed(self, exc: StoreUnusable) -> None:
        """Said once: a full disk is retried every second, and a line a second would
        flood the log (the journal's rule, journal_write_failed)."""
        if self._failing is None:
            log.error(
                "ledger_write_failed", reason=str(exc),
                effect="the books wait in memory; written once the disk takes them",
            )  # fmt: skip
        self._failing = str(exc)

    def _written(self) -> None:
        if self._failing is not None:
            log.info("ledger_recovered", was=self._failing)
            self._failing = None

    async def _session_topics(self, mqtt: Publisher) -> None:
        now = time.monotonic()
        ledger = self.ledger
        news, ledger.topic_news = ledger.topic_news, {}
        books_of = ledger.books
        noted = ((name, books.topic_urgent) for name in news if (books := books_of.get(name)))
        for name in self._pace.due(noted, now):
            books = books_of[name]
            if not books.topic_changed:
                continue  # published since it was noted
            books.topic_changed = books.topic_urgent = False
            self._pace.sent(name, now)
            payload = books.session_payload()
            if payload is not None:
                await mqtt.publish_retained(self.topics.session(name), payload)

    async def _ended(self, mqtt: Publisher) -> None:
        ended = self.ledger.ended
        while ended and mqtt.connected:
            session = ended[0]
            payload = json.dumps(session.public(), ensure_ascii=False, allow_nan=False)
            self._announcing = session.id
            try:
                # Exactly once while this process lives; a kill -9 before the note below
                # sends it again on the next start, with the same id.
                await mqtt.publish_once(self.topics.session_ended(session.charger), payload)
            except PublishRefused as exc:
                # The broker will not take it (an ACL): it stays owed for the next start.
                log.warning("session_ended_refused", id=session.id, reason=str(exc))
                ended.popleft()
                continue
            finally:
                self._announcing = None
            ended.popleft()
            try:
                self.ledger.announced(session)
            except StoreUnusable as exc:
                # Published again after a restart at worst: twice, never lost.
                self._failed(exc)
            else:
                self._written()
