"""One charger: what it answers or pushes, kept and published.

A Charger polls when its PollSchedule says (politely: settings only now and then)
or, when its transport pushes, takes what the charger sends (PushSide); either way
its ChargerOutput publishes what changed, and its Availability tells whether it is
there (online, failures, Retry-After). Its CommandRunner runs its commands one at
a time and sees it only as a ChargerAccess. It knows neither the journal nor the
MQTT session: the runner reports through a sink.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import asdict
from typing import Any

import structlog

from goe2mqtt.catalogue import LIVE_KEYS, STATUS_KEYS, keep_known
from goe2mqtt.catalogue.facts import DeviceFacts
from goe2mqtt.charger.availability import Availability
from goe2mqtt.charger.publish import ChargerOutput, Publisher
from goe2mqtt.charger.push_side import PushSide
from goe2mqtt.charger.pv_feed import PvFeed
from goe2mqtt.charger.rules import check_serial, serial_from_status
from goe2mqtt.charger.schedule import PollSchedule
from goe2mqtt.charger.view import ChargerView, changed_in
from goe2mqtt.commands.outcomes import CommandSink, CommandStats
from goe2mqtt.commands.runner import CONFIRM_DELAYS, MAX_QUEUED_COMMANDS, CommandRunner
from goe2mqtt.config.settings import ChargerSettings
from goe2mqtt.goe.transport import GoeError, PushTransport, Transport
from goe2mqtt.ledger.books import ChargerBooks
from goe2mqtt.mqtt.topics import Topics

log = structlog.get_logger()

CAR_IDLE = 1  # go-e car state: no car connected
PUSH_START_WAIT = 5.0  # at start, the first poll waits this long for the socket to stand


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
        self._out = ChargerOutput(
            self.name, publisher, topics=topics, discovery_prefix=discovery_prefix,
            leaf_topics=leaf_topics, on_facts=on_facts, added_values=self._added_values,
            currency=books.currency if books is not None else "EUR",
        )  # fmt: skip
        self.status: dict[str, Any] = {}
        # Unique ids need the serial: a local charger configured without one tells it
        # (and the bridge remembers it from an earlier run).
        self.serial = settings.serial or known_serial
        self._on_serial = on_serial
        # What the last run learnt, announced until this run reaches the charger.
        self._known_facts = known_facts
        self.availability = Availability(self.name)
        self.polled_once = False  # answered or not
        self.lock = asyncio.Lock()  # one conversation with the charger at a time
        self._schedule = PollSchedule(settings)  # when to look, which keys to ask
        self.pv_feed = PvFeed(
            self.name,
            self._write_feed,
            self._feed_changed,
            interval=settings.pv_feed_interval,
            timeout=settings.pv_feed_timeout,
        )
        self._feed_publish: asyncio.Task[list[str]] | None = None
        self._push: PushSide | None = None
        if isinstance(transport, PushTransport):
            self._push = PushSide(self.name, transport)
        # It sees this charger through ChargerAccess and writes through the transport.
        self.runner = CommandRunner(
            self.name,
            self,
            transport.set,
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
    def view(self) -> ChargerView:
        """What its status means now (the status page and /metrics read it)."""
        return self._out.view

    @property
    def connection(self) -> str:
        """Which transport serves the charger now, and why (the Connection entity)."""
        return self._push.transport.connection if self._push is not None else "polling"

    def _added_values(self) -> dict[str, Any]:
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
        if not self.availability.online:
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
        self.availability.went_down(reason)
        await self._out.availability(online=False)
        # Waiting commands would only wait for a charger that is not there.
        self.runner.refuse_waiting(f"charger offline: {reason}")

    # --- polling ----------------------------------------------------------------------

    async def run(self, start_within: float | None = None) -> None:
        """Poll, and keep the push connection open beside it when the transport has one."""
        if self._push is None:
            await self._schedule.run(start_within, self._look, self.next_delay)
            return
        async with self._push.open(self._pushed, self._push_state_changed):
            # The socket tells at once whether it stands (or why not): polling before
            # it did would be one HTTP call too many for every charger at every start.
            await self._schedule.sleep(max(self.settings.scan_interval, PUSH_START_WAIT))
            # While it pushes, its connection wakes the loop when it goes down (on_state).
            await self._schedule.run(
                start_within, self._look, self.next_delay, told=lambda: self.pushing
            )

    async def _look(self) -> bool:
        """One look of the poll loop: a poll; none (False) while the charger pushes."""
        if self.pushing:
            self.polled_once = True  # the charger tells us what changes
            return False
        if self._push is not None and self._push.settling:
            return False  # its socket is on its way; one that fails wakes this loop
        try:
            await self.refresh()
        except Exception as exc:
            # A bug must not stop a charger from being watched, nor leave it
            # "online" with frozen values: it counts as a failed poll.
            log.exception("poll_crashed", charger=self.name)
            await self._poll_failed(GoeError(f"internal error: {type(exc).__name__}"))
        self.polled_once = True
        return True

    def stop(self) -> None:
        """Make run() and serve_commands() return after what they are doing now.

        Cancellation alone is not enough: on Python 3.11 asyncio.wait_for, which
        libraries use inside every publish, drops a cancel that arrives as its
        future completes, and the loop would go on polling.
        """
        self._schedule.stop()
        self.runner.stop()
        self.pv_feed.stop()
        self._out.stop()

    def next_delay(self) -> float:
        car_idle = self.status.get("car") == CAR_IDLE
        return self._schedule.next_delay(
            failures=self.availability.failures, hold_off=self.hold_off, car_idle=car_idle
        )

    def poll_soon(self, delay: float = 0.0) -> None:
        """Poll early (after a command: every key, settings included)."""
        self._schedule.poll_soon(delay)

    async def refresh(self) -> bool:
        """Read the charger once and publish what changed; False if it did not answer."""
        async with self.lock:
            return await self.read_back()

    async def read_back(self, since: int | None = None) -> bool:
        """refresh() for a caller that already holds the lock. A pushing charger's
        read-back is a message it pushed after ``since`` (a count of ``pushed``, noted
        before a write: what came since is the charger's word; None: from now)."""
        push = self._push
        if push is not None and push.live:
            # What the charger pushes is the read-back: one that came already, or its
            # next (it sends one a second), rather than asking over HTTP.
            if await push.came_after(push.count if since is None else since) or (not push.can_ask):
                # A command's result comes after its values are out, not up to
                # MIN_INTERVAL later.
                await self._out.flush()
                return self.pushing
            if self.pushing:
                return await self._ask_instead(push)
            # It went down meanwhile: the transport's status is its fallback's now.
        started = time.monotonic()
        every_key = self._schedule.every_key_due(started, writing=self.runner.running is not None)
        asked = STATUS_KEYS if every_key else LIVE_KEYS
        try:
            answer = keep_known(await self.transport.status(asked))
            self._check_serial(answer)
        except GoeError as exc:
            await self._poll_failed(exc)
            return False
        took_ms = round((time.monotonic() - started) * 1000, 1)
        self.availability.polls["ok"] += 1
        status = self._schedule.answered(self.status, answer, every_key=every_key, at=started)
        if status is None:  # it restarted: every key now
            return await self.read_back()
        changed = await self._accept(status)
        log.debug("poll", charger=self.name, ms=took_ms, changed=changed)
        return True

    async def _ask_instead(self, push: PushSide) -> bool:
        """No frame within PUSH_WAIT though the socket stands: what it pushed last may
        be stale, and a read-back confirmed by it would lie. Ask the charger."""
        try:
            status = await push.ask()
            if status is None:
                return self.pushing  # nobody to ask: the last copy is all there is
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
        """A message from the push connection: a full status, or the keys that changed."""
        assert self._push is not None  # only the push connection calls this
        if full:
            status = keep_known(values)
            self._check_serial(status)  # WrongCharger ends the connection, with the reason
            self._push.arrived()
            await self._accept(status, merge=True)
            return
        delta = keep_known(values)
        if not delta:
            return  # nothing the bridge reads (a clock): no news of what it shows
        self._check_serial(delta)  # in any message, not only the full status
        self._push.arrived()
        changed = changed_in(self.status, delta)
        self.availability.heard()
        if changed:
            # A new dict: the view keeps the last status by reference to compare.
            await self._accept({**self.status, **delta}, changed, merge=True)
        else:
            # Unchanged still shows what the feed wrote: a poll would have said so too.
            self.pv_feed.observe(self.status)

    @property
    def pushed(self) -> int:
        """Messages pushed so far with a key the bridge reads (0 for a polled charger):
        a mark for read_back's ``since``."""
        return self._push.count if self._push is not None else 0

    def _push_state_changed(self) -> None:
        """The push connection came up or went down: poll (or stop polling) now."""
        self._schedule.wake()
        if self.status:
            self._feed_changed()  # the Connection entity says which transport serves

    async def _accept(
        self, status: dict[str, Any], changed: set[str] | None = None, *, merge: bool = False
    ) -> list[str]:
        """A status that arrived (polled or pushed): keep it and publish what changed
        (``merge``: a pushed one, merged with what follows within MIN_INTERVAL)."""
        self.status = status
        self.availability.heard()
        self.pv_feed.observe(status)
        if self.serial is None:
            self.serial = serial_from_status(status)
            if self.serial is not None:
                self._on_serial(self.serial)
        if self.books is not None:  # before the states: they show what it counted
            self.books.observe(status, serial=self.serial, grid_w=self.pv_feed.grid())
        recovered_after = self.availability.answered()
        # Back online: its states go out before "online" vouches for them.
        published = await self._take(status, changed, merge=merge and self.availability.online)
        if self.availability.came_up(recovered_after):
            await self._out.availability(online=True)
        return published

    def _check_serial(self, status: Mapping[str, Any]) -> None:
        check_serial(status, self.serial, configured=self.settings.serial is not None)

    async def _poll_failed(self, exc: GoeError) -> None:
        offline = self.availability.poll_failed(exc)
        if self._out.facts is None:
            # Never reached yet: announce the entities anyway so HA shows them unavailable,
            # with the facts an earlier run learnt (model, firmware, entities) if any.
            await self._publish_discovery(self._known_facts or DeviceFacts())
        if offline:
            await self.go_offline(str(exc))

    # --- commands: run by the CommandRunner ------------------------------------------

    @property
    def commands(self) -> CommandStats:
        return self.runner.stats

    @property
    def queued(self) -> int:
        return self.runner.queued

    async def serve_commands(self) -> None:
        """Commands one at a time, and the PV feed beside them."""
        await asyncio.gather(self.runner.serve(), self.pv_feed.run())

    @property
    def last_error(self) -> tuple[float, str] | None:
        """What went wrong last, poll or command: (unix time, what), for bridge/info."""
        errors = [e for e in (self.availability.poll_error, self.runner.last_failure) if e]
        return max(errors, default=None)

    # --- what the runner sees (ChargerAccess) ---------------------------------------

    @property
    def polled(self) -> bool:
        return self.availability.polled

    def unreachable(self) -> str | None:
        return self.availability.unreachable()

    @property
    def hold_off(self) -> float:
        return self.availability.hold_off

    def info(self) -> dict[str, Any]:
        return {
            **self.availability.info(),
            "commands": asdict(self.commands),
            "queued_commands": self.queued,
            "pv_feed": self.pv_feed.state,
            **(self._push.info() if self._push is not None else {}),
        }
