"""One charger: its poll loop, its push channel, and its command runner.

A Charger polls (politely: settings only now and then) or, when its transport
pushes, takes what the charger sends; either way its ChargerOutput publishes what
changed. Its CommandRunner runs its commands one at a time. It knows neither the
journal nor the MQTT session: it reports through a sink.
"""

from __future__ import annotations

import asyncio
import contextlib
import random
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import asdict
from typing import Any

import structlog

from goe2mqtt.catalogue import LIVE_KEYS, STATUS_KEYS, own_keys
from goe2mqtt.catalogue.facts import DeviceFacts
from goe2mqtt.charger.publish import ChargerOutput, Publisher
from goe2mqtt.charger.pv_feed import PvFeed
from goe2mqtt.charger.rules import check_serial, next_due, serial_from_status
from goe2mqtt.charger.view import changed_in
from goe2mqtt.commands.outcomes import (
    CommandSink,
    CommandStats,
    QueuedCommand,
)
from goe2mqtt.commands.runner import CONFIRM_DELAYS, MAX_QUEUED_COMMANDS, CommandRunner
from goe2mqtt.config.settings import ChargerSettings
from goe2mqtt.goe.client import GoeError, RateLimited
from goe2mqtt.goe.push import AskingTransport, PushTransport
from goe2mqtt.goe.transport import Transport
from goe2mqtt.ledger.books import ChargerBooks
from goe2mqtt.mqtt.topics import Topics
from goe2mqtt.util.aio import Alarm
from goe2mqtt.util.values import iso

log = structlog.get_logger()

OFFLINE_AFTER_FAILURES = 3  # transient failures in a row before a charger counts as offline
MAX_BACKOFF_FACTOR = 3  # polling slows to at most 3x scan_interval while failing
MAX_RETRY_AFTER = 900.0  # a Retry-After longer than this is capped: we look again by then
CAR_IDLE = 1  # go-e car state: no car connected
PUSH_START_WAIT = 5.0  # at start, the first poll waits this long for the socket to stand
# A read-back while the charger pushes waits this long for its next message; none
# came: the socket may stand and say nothing, and the charger is asked (HTTP) instead.
PUSH_WAIT = 2.0


class Charger:
    """One charger: poll loop and state publishing; its commands go to its runner."""

    def __init__(
        self,
        settings: ChargerSettings,
        transport: Transport,
        publisher: Publisher,
        *,
        topics: Topics,
        discovery_prefix: str | None,
        max_command_age: float = 300.0,
        confirm_delays: Sequence[float] = CONFIRM_DELAYS,
        sink: CommandSink | None = None,
        max_queued: int = MAX_QUEUED_COMMANDS,
        leaf_topics: bool = True,
        known_serial: str | None = None,
        on_serial: Callable[[str], None] = lambda serial: None,
        known_facts: DeviceFacts | None = None,
        on_facts: Callable[[DeviceFacts], None] = lambda facts: None,
        books: ChargerBooks | None = None,
    ) -> None:
        self.settings = settings
        self.books = books  # the session ledger: fed every status this charger accepts
        self.name = settings.name
        self.transport = transport  # how the charger is reached (today: HTTP)
        self._topics = topics
        self._out = ChargerOutput(
            self.name, publisher, topics=topics, discovery_prefix=discovery_prefix,
            leaf_topics=leaf_topics, on_facts=on_facts, bridge_values=self._bridge_values,
            currency=books.currency if books is not None else "EUR",
        )  # fmt: skip
        self.status: dict[str, Any] = {}
        # Unique ids need the serial: a local charger configured without one tells it
        # (and the bridge remembers it from an earlier run).
        self.serial = settings.serial or known_serial
        self._on_serial = on_serial
        # What the last run learnt, announced until this run reaches the charger.
        self._known_facts = known_facts
        self.online = False
        self.offline_reason = "not reached yet"
        self.failures = 0
        self.polled_once = False  # answered or not
        self.last_success: float | None = None
        self._not_before = 0.0  # monotonic: the cloud asked us to wait (Retry-After)
        self.lock = asyncio.Lock()  # one conversation with the charger at a time
        self._wake = Alarm()
        self._stopping = False
        self.last_error: tuple[float, str] | None = None  # (unix time, what went wrong)
        self.pv_feed = PvFeed(
            self.name,
            self._write_feed,
            self._feed_changed,
            interval=settings.pv_feed_interval,
            timeout=settings.pv_feed_timeout,
        )
        self._feed_publish: asyncio.Task[list[str]] | None = None
        self._settled_read_at: float | None = None  # monotonic: the last poll of every key
        self._settled_due = True  # a write, a restart: read settings and facts again
        self._push = transport if isinstance(transport, PushTransport) else None
        self._asks = transport if isinstance(transport, AskingTransport) else None
        # Pushed messages that carried a key the bridge reads: a read-back counts
        # those after a mark (a command notes it before it writes).
        self.pushed = 0
        self._pushed_now = asyncio.Event()  # set as ``pushed`` moves
        self.runner = CommandRunner(
            self,
            sink=sink,
            max_command_age=max_command_age,
            confirm_delays=confirm_delays,
            max_queued=max_queued,
        )

    # --- publishing -------------------------------------------------------------------

    async def publish_initial(self) -> None:
        """Before the first poll the charger's availability is unknown: say offline."""
        await self._out.availability(online=False)

    async def _publish_discovery(self, facts: DeviceFacts) -> None:
        if self.serial is not None:
            await self._out.discovery(facts, self.serial)

    @property
    def connection(self) -> str:
        """Which transport serves the charger now, and why (the Connection entity)."""
        return self._push.connection if self._push is not None else "polling"

    def _bridge_values(self) -> dict[str, Any]:
        books = self.books.states() if self.books is not None else {}
        return {**self.pv_feed.states(), **books, "@connection": self.connection}

    async def _take(
        self, status: Mapping[str, Any], changed: set[str] | None = None, *, merge: bool = False
    ) -> list[str]:
        """Map a status through the view; publish the discovery and states it changed
        (``merge``: a pushed one, published at most every MIN_INTERVAL)."""
        return await self._out.take(status, changed, self.serial, merge=merge)

    # --- the PV feed: readings in, ids out, its state on our topics ------------------

    def offer_reading(self, service: str, payload: bytes, *, retained: bool) -> str | None:
        """A PV reading from MQTT; the reason when it is refused."""
        return self.pv_feed.offer(service, payload, retained=retained)

    async def _write_feed(self, reading: dict[str, float]) -> None:
        # Not under the lock: a command's read-backs take seconds, and the charger
        # would forget the feed meanwhile. ids touches no key a command sets.
        if not self.online:
            raise GoeError("charger offline")
        await self.transport.set({"ids": dict(reading)})

    def _feed_changed(self) -> None:
        if self.status and (self._feed_publish is None or self._feed_publish.done()):
            # The status as it is when the task runs: a delta may come first, and an
            # older copy taken after it would publish its values again.
            self._feed_publish = asyncio.create_task(self._take_current())

    async def _take_current(self) -> list[str]:
        return await self._take(self.status)

    async def go_offline(self, reason: str) -> None:
        if self.online:
            log.warning("charger_offline", charger=self.name, reason=reason)
        self.online = False
        self.offline_reason = reason
        await self._out.availability(online=False)
        # Waiting commands would only wait for a charger that is not there.
        self.runner.refuse_waiting(f"charger offline: {reason}")

    # --- polling ----------------------------------------------------------------------

    async def run(self, start_within: float | None = None) -> None:
        """Poll, and keep the push channel open beside it when the transport has one."""
        if self._push is None:
            await self._poll(start_within)
            return
        pushing = asyncio.create_task(
            self._push.push(self._pushed, self._push_state_changed), name=f"push:{self.name}"
        )
        try:
            # The socket tells at once whether it stands (or why not): polling before
            # it did would be one HTTP call too many for every charger at every start.
            await self._wake.wait(max(self.settings.scan_interval, PUSH_START_WAIT))
            await self._poll(start_within)
        finally:
            # Again until it ends: on 3.11 a wait_for inside may swallow one cancel.
            while not pushing.done():
                pushing.cancel()
                await asyncio.wait({pushing}, timeout=1.0)
            if not pushing.cancelled() and pushing.exception() is not None:
                log.error("push_crashed", charger=self.name, error=repr(pushing.exception()))

    async def _poll(self, start_within: float | None) -> None:
        # Spread the first polls of a fleet instead of a burst. Each poll is then due an
        # interval after the one before was due, not after it ended: polls that a stall
        # (a long collection, a busy machine) made late all at once go back to their own
        # times, instead of staying bunched and coming due together ever after.
        if start_within is None:
            start_within = min(self.settings.scan_interval, 1.0)
        loop = asyncio.get_running_loop()
        due = loop.time() + random.uniform(0, start_within)
        woken = await self._wake.wait(due - loop.time())
        while not self._stopping:
            self._wake.clear()
            if woken:  # polled early (a command, a wake-up): the schedule starts anew
                due = loop.time()
            if self.pushing:
                # The charger tells us what changes: no poll, only a look whether the
                # channel still stands, at the usual pace.
                self.polled_once = True
                woken = await self._wake.wait(self.settings.scan_interval)
                continue
            try:
                await self.refresh()
            except Exception as exc:
                # A bug must not stop a charger from being watched, nor leave it
                # "online" with frozen values: it counts as a failed poll.
                log.exception("poll_crashed", charger=self.name)
                await self._poll_failed(GoeError(f"internal error: {type(exc).__name__}"))
            self.polled_once = True
            now = loop.time()
            due = next_due(due, self.next_delay(), now)
            woken = await self._wake.wait(due - now)

    def stop(self) -> None:
        """Make run() and serve_commands() return after what they are doing now.

        Cancellation alone is not enough: on Python 3.11 asyncio.wait_for, which
        libraries use inside every publish, drops a cancel that arrives as its
        future completes, and the loop would go on polling.
        """
        self._stopping = True
        self._wake.set()
        self.runner.wake()
        self.pv_feed.stop()
        self._out.stop()

    def next_delay(self) -> float:
        hold_off = self.hold_off
        if self.failures:
            factor = min(2 ** (self.failures - 1), MAX_BACKOFF_FACTOR)
            return max(float(self.settings.scan_interval * factor), hold_off)
        if self.status.get("car") == CAR_IDLE:
            # No car: only plugging one in can change anything. A command wakes us anyway.
            return max(self.settings.idle_interval, hold_off)
        return max(self.settings.scan_interval, hold_off)

    def _every_key_due(self, now: float) -> bool:
        """Polite polling: settings and facts only every config_interval, after a
        write (a command reads back every key) or when the charger restarted."""
        return (
            self._settled_due
            or self.runner.running is not None
            or self._settled_read_at is None
            or now - self._settled_read_at >= self.settings.config_interval
        )

    def poll_soon(self, delay: float = 0.0) -> None:
        """Poll early (after a command: every key, settings included)."""
        self._settled_due = True
        if delay <= 0:
            self._wake.set()
        else:
            asyncio.get_running_loop().call_later(delay, self._wake.set)

    async def refresh(self) -> bool:
        """Read the charger once and publish what changed; False if it did not answer."""
        async with self.lock:
            return await self.read_back()

    async def read_back(self, since: int | None = None) -> bool:
        """refresh() for a caller that already holds the lock. A pushing charger's
        read-back is a message it pushed after ``since`` (a count of ``pushed``, noted
        before a write: what came since is the charger's word; None: from now)."""
        if self.pushing:
            # What the charger pushes is the read-back: one that came already, or its
            # next (it sends one a second), rather than asking over HTTP.
            if await self._pushed_after(self.pushed if since is None else since) or (
                self._asks is None
            ):
                # A command's result comes after its values are out, not up to
                # MIN_INTERVAL later.
                await self._out.flush()
                return self.pushing
            if self.pushing:
                return await self._ask_instead(self._asks)
            # It went down meanwhile: the transport's status is its fallback's now.
        started = time.monotonic()
        every_key = self._every_key_due(started)
        try:
            answer = own_keys(await self.transport.status(STATUS_KEYS if every_key else LIVE_KEYS))
            self._check_serial(answer)
        except GoeError as exc:
            await self._poll_failed(exc)
            return False
        took_ms = round((time.monotonic() - started) * 1000, 1)
        if every_key:
            self._settled_read_at, self._settled_due, status = started, False, answer
        elif answer.get("rbc") != self.status.get("rbc"):
            # It restarted, perhaps into new firmware: read every key now.
            self._settled_due = True
            return await self.read_back()
        else:
            # Settings as last read; a live key the answer lacks is gone (unknown).
            status = {k: v for k, v in self.status.items() if k not in LIVE_KEYS}
            status.update(answer)
        changed = await self._accept(status)
        log.debug("poll", charger=self.name, ms=took_ms, changed=changed)
        return True

    async def _pushed_after(self, count: int) -> bool:
        """Whether a message came after the ``count``-th, waiting PUSH_WAIT at most."""
        with contextlib.suppress(TimeoutError):
            async with asyncio.timeout(PUSH_WAIT):
                while self.pushed <= count:
                    self._pushed_now.clear()
                    await self._pushed_now.wait()
        return self.pushed > count

    async def _ask_instead(self, asks: AskingTransport) -> bool:
        """No frame within PUSH_WAIT though the socket stands: what it pushed last may
        be stale, and a read-back confirmed by it would lie. Ask the charger."""
        try:
            answer = await asks.ask(STATUS_KEYS)
            if answer is None:
                return self.pushing  # nobody to ask: the last copy is all there is
            status = own_keys(answer)
            self._check_serial(status)
        except GoeError as exc:
            # The socket still counts as up: not a failed poll, only no read-back.
            log.info("read_back_failed", charger=self.name, reason=str(exc))
            return False
        await self._accept({**self.status, **status})
        return True

    # --- push: the charger tells what changed ---------------------------------------

    @property
    def pushing(self) -> bool:
        return self._push is not None and self._push.live

    async def _pushed(self, values: Mapping[str, Any], full: bool) -> None:
        """A message from the push channel: a full status, or the keys that changed."""
        if full:
            status = own_keys(values)
            self._check_serial(status)  # WrongCharger ends the connection, with the reason
            self._fresh()
            await self._accept(status, merge=True)
            return
        delta = own_keys(values)
        if not delta:
            return  # nothing the bridge reads (a clock): no news of what it shows
        self._check_serial(delta)  # in any message, not only the full status
        self._fresh()
        changed = changed_in(self.status, delta)
        self.last_success = time.time()
        if changed:
            # A new dict: the view keeps the last status by reference to compare.
            await self._accept({**self.status, **delta}, changed, merge=True)
        else:
            # Unchanged still shows what the feed wrote: a poll would have said so too.
            self.pv_feed.observe(self.status)

    def _fresh(self) -> None:
        self.pushed += 1
        self._pushed_now.set()

    def _push_state_changed(self) -> None:
        """The push channel came up or went down: poll (or stop polling) now."""
        self._wake.set()
        if self.status:
            self._feed_changed()  # the Connection entity says which transport serves

    async def _accept(
        self, status: dict[str, Any], changed: set[str] | None = None, *, merge: bool = False
    ) -> list[str]:
        """A status that arrived (polled or pushed): keep it and publish what changed
        (``merge``: a pushed one, merged with what follows within MIN_INTERVAL)."""
        self.status = status
        self.last_success = time.time()
        self.pv_feed.observe(status)
        if self.serial is None:
            self.serial = serial_from_status(status)
            if self.serial is not None:
                self._on_serial(self.serial)
        if self.books is not None:  # before the states: they show what it counted
            self.books.observe(status, serial=self.serial, grid_w=self.pv_feed.grid())
        recovered_after, self.failures = self.failures, 0
        # Back online: its states go out before "online" vouches for them.
        published = await self._take(status, changed, merge=merge and self.online)
        if not self.online:
            self.online = True
            log.info("charger_online", charger=self.name, failed_polls=recovered_after)
            await self._out.availability(online=True)
        return published

    def _check_serial(self, status: Mapping[str, Any]) -> None:
        check_serial(status, self.serial, configured=self.settings.serial is not None)

    async def _poll_failed(self, exc: GoeError) -> None:
        self.failures += 1
        self.last_error = (time.time(), f"poll failed: {exc}")
        if isinstance(exc, RateLimited) and exc.retry_after is not None:
            wait = min(exc.retry_after, MAX_RETRY_AFTER)
            self._not_before = max(self._not_before, time.monotonic() + wait)
        if self._out.facts is None:
            # Never reached yet: announce the entities anyway so HA shows them unavailable,
            # with the facts an earlier run learnt (model, firmware, entities) if any.
            await self._publish_discovery(self._known_facts or DeviceFacts())
        if self.failures == 1:
            log.warning("poll_failed", charger=self.name, reason=str(exc))
        else:
            log.debug("poll_failed", charger=self.name, reason=str(exc), failures=self.failures)
        if exc.offline_now or self.failures >= OFFLINE_AFTER_FAILURES:
            await self.go_offline(str(exc))

    # --- commands: run by the CommandRunner ------------------------------------------

    @property
    def commands(self) -> CommandStats:
        return self.runner.stats

    @property
    def queued(self) -> int:
        return self.runner.queued

    def submit(self, command: QueuedCommand) -> None:
        self.runner.submit(command)

    async def serve_commands(self) -> None:
        """Commands one at a time, and the PV feed beside them."""
        await asyncio.gather(self.runner.serve(), self.pv_feed.run())

    # --- what the runner uses -------------------------------------------------------

    @property
    def polled(self) -> bool:
        return self.last_success is not None or self.failures > 0

    @property
    def stopping(self) -> bool:
        return self._stopping

    @property
    def hold_off(self) -> float:
        """Seconds the cloud asked us to wait (Retry-After); 0 when it did not."""
        return max(0.0, self._not_before - time.monotonic())

    def info(self) -> dict[str, Any]:
        return {
            "online": self.online,
            "last_poll": iso(self.last_success),
            "consecutive_failures": self.failures,
            "commands": asdict(self.commands),
            "queued_commands": self.queued,
            "pv_feed": self.pv_feed.state,
            # What a pushing peer sent that was not kept (unknown keys, huge values...).
            **({"skipped": dict(self._push.skipped)} if self._push and self._push.skipped else {}),
        }
