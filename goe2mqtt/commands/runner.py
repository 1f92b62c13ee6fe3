"""One charger's commands: a bounded queue, run one at a time, each confirmed.

A command comes parsed (the desk refused what does not parse before journaling it).
Freshness and availability are checked again when its turn comes; a charger that goes
offline refuses what waits for it; a set whose answer was lost is looked for before
it counts as failed; every set is read back until the charger shows it. The runner
sees its charger through a narrow view (ChargerAccess: what it shows, whether it can
be reached, refresh and read back) and writes through the transport's ``set``; it
changes nothing of the charger's own: a failure is the runner's (``last_failure``).
"""

from __future__ import annotations

import asyncio
import time
from collections import deque
from collections.abc import Sequence
from typing import Any

import structlog

from goe2mqtt.catalogue import ACTIONS, UNCONFIRMABLE
from goe2mqtt.commands.access import ChargerAccess, SetCallSender
from goe2mqtt.commands.outcomes import (
    NOT_CONFIRMED,
    OUTCOME_UNKNOWN,
    CommandSink,
    CommandStats,
    JournalWait,
    QueuedCommand,
    RepeatFilter,
    interrupted,
    rejection,
    unconfirmed_values,
)
from goe2mqtt.commands.payloads import (
    CommandError,
    SetCall,
    check_fresh,
    command_result,
    request_id_of,
)
from goe2mqtt.commands.services import Command, car_state_name
from goe2mqtt.goe.transport import GoeError, RateLimited, TransientError
from goe2mqtt.util.values import JsonValue

log = structlog.get_logger()

FOLLOW_UP_DELAY = 1.5  # the charger's logic runs once a second: look again after a command
# The cloud answers a set with 202 "forwarded, no guarantee": read the status back
# after these pauses (about 5 s in all) until the charger shows the new values.
CONFIRM_DELAYS = (0.0, 1.5, 3.5)
MAX_QUEUED_COMMANDS = 20  # per charger; more waiting means the sender should slow down
# Past max_command_age by this much when a wait for the journal ends: its next look
# finds it stale, not a hair short of it (and waiting again for nothing).
_PAST_AGE = 0.1


class _PutBack(Exception):
    """A command that waited for the journal goes back to its queue, as the journal
    has it: the runner stops (it runs after the restart), or a site's write came (the
    fuse does not wait for a disk: it runs first, and this one waits again after it)."""


class CommandRunner:
    def __init__(
        self,
        name: str,
        charger: ChargerAccess,
        send: SetCallSender,
        *,
        sink: CommandSink | None,
        max_command_age: float,
        confirm_delays: Sequence[float],
        max_queued: int,
    ) -> None:
        self.name = name  # the charger's, for the log
        self._charger = charger
        self._send = send  # the transport's set: how a set call reaches the charger
        self._sink = sink
        self._refusals = sink.refusals if sink is not None else RepeatFilter()
        self._max_command_age = max_command_age
        self._confirm_delays = tuple(confirm_delays)
        self._max_queued = max_queued
        self._queue: deque[tuple[QueuedCommand, Command]] = deque()
        self._queued = asyncio.Event()
        self._stopping = False
        self._wake = asyncio.Event()  # ends a wait for the journal: a stop, a site's write
        self.running: QueuedCommand | None = None
        self._waiting: QueuedCommand | None = None  # for the journal, out of the queue
        self._sent: list[SetCall] | None = None  # set calls of the running command, once sent
        self.stats = CommandStats()
        # The last command that failed at the charger: (unix time, what went wrong).
        self.last_failure: tuple[float, str] | None = None

    def stop(self) -> None:
        """Make serve() return after the command it runs now."""
        self._stopping = True
        self._queued.set()
        self._wake.set()

    def refuse_waiting(self, reason: str) -> None:
        """Refuse every waiting command (the charger went offline)."""
        while self._queue:
            self.refuse(self._queue.popleft()[0], reason)

    @property
    def queued(self) -> int:
        """Commands waiting: in the queue, and one waiting for the journal at its head."""
        return len(self._queue) + (self._waiting is not None)

    def full(self) -> str | None:
        """Why a command now would be refused as "queue full" (None: it may wait). The one
        waiting for the journal at the head counts (as in ``queued``): not counted, the
        first command after the disk healed was taken beside a full queue."""
        if self.queued >= self._max_queued:
            return f"queue full: {self.queued} commands wait for {self.name}"
        return None

    def submit(self, queued: QueuedCommand, command: Command) -> None:
        """Queue a parsed command; it is refused at once if it cannot wait."""
        offline = self._charger.unreachable() if self._charger.polled else None
        if offline is not None:
            self.refuse(queued, f"charger offline: {offline}")
        elif not queued.first and (full := self.full()) is not None:
            self.refuse(queued, full)
        else:
            if queued.first:  # a site's write: after the site's waiting, before the users'
                self._queue.insert(self._users_first(), (queued, command))
                self._wake.set()  # a user's command waiting for the journal lets it pass
            else:
                self._queue.append((queued, command))
            self._queued.set()
            log.debug(
                "command_queued",
                charger=self.name,
                service=queued.service,
                seq=queued.seq,
                waiting=len(self._queue),
            )

    async def serve(self) -> None:
        """Run queued commands one after the other until stop().

        A command cancelled while it runs (shutdown grace exceeded) still gets its
        result: outcome unknown if a set may have gone out, so nobody resends blindly.
        """
        while not self._stopping:
            if not self._queue:
                self._queued.clear()
                await self._queued.wait()
                continue
            queued, command = self._queue.popleft()
            self.running, self._sent = queued, None
            try:
                result = await self._execute(queued, command)
            except _PutBack:
                at = 0 if queued.first else self._users_first()
                self._queue.insert(at, (queued, command))
                continue
            except asyncio.CancelledError:
                if self._sent is None:  # never started: it runs after the restart
                    self._queue.appendleft((queued, command))
                else:
                    self._report(queued, interrupted(queued, self._sent))
                raise
            except Exception as exc:
                log.exception("command_crashed", charger=self.name, service=queued.service)
                self.stats.failed += 1
                result = command_result(
                    queued.service,
                    ok=False,
                    request_id=request_id_of(queued.payload),
                    error=f"internal error: {type(exc).__name__}",
                )
            finally:
                self.running = None
            self._report(queued, result)

    def _report(self, command: QueuedCommand, result: dict[str, Any]) -> None:
        if self._sink is not None:
            self._sink.command_finished(command, result)

    def refuse(self, command: QueuedCommand, reason: str) -> None:
        """Refuse a command that never reached the charger (counted, answered through
        the sink): the desk's refusals of what does not parse come here too."""
        self.stats.rejected += 1
        self._report(command, rejection(command, reason, self._refusals))

    async def execute(self, queued: QueuedCommand, command: Command) -> dict[str, Any]:
        """Run one parsed command now (outside the queue); its result."""
        self._sent = None
        return await self._execute(queued, command)

    async def _execute(self, queued: QueuedCommand, command: Command) -> dict[str, Any]:
        """Run one command; while the journal cannot mark it running, wait (its
        charger's queue behind it, in order) until it can, or until it is too old."""
        while True:
            try:
                return await self._attempt(queued, command)
            except JournalWait as wait:
                await self._wait_for_journal(queued, command, wait)

    async def _wait_for_journal(
        self, queued: QueuedCommand, command: Command, wait: JournalWait
    ) -> None:
        left = self._max_command_age - (time.monotonic() - queued.received_at)
        if command.sent_at is not None:
            left = min(left, self._max_command_age - (time.time() - command.sent_at))
        if self._put_back(queued):
            raise _PutBack
        log.warning("command_waits_for_journal", charger=self.name, service=queued.service,
                    seq=queued.seq, reason=str(wait), at_most=max(0, round(left)))  # fmt: skip
        self._wake.clear()
        # Waiting, not writing: no read-back of every key meanwhile (Charger's polls).
        running, self.running, self._waiting = self.running, None, queued
        waits = [asyncio.ensure_future(e.wait()) for e in (wait.writable, self._wake)]
        try:
            await asyncio.wait(waits, timeout=max(0.0, left) + _PAST_AGE,
                               return_when=asyncio.FIRST_COMPLETED)  # fmt: skip
        finally:
            for waiter in waits:
                waiter.cancel()
            self.running, self._waiting = running, None
        if self._put_back(queued):
            raise _PutBack

    def _put_back(self, waiting: QueuedCommand) -> bool:
        """Whether a command waiting for the journal goes back to its queue: the runner
        stops, or a site's write waits behind a user's command."""
        return self._stopping or (
            not waiting.first and bool(self._queue) and self._queue[0][0].first
        )

    def _users_first(self) -> int:
        """Where the users' commands begin in the queue (after the site's writes)."""
        return next((i for i, (q, _) in enumerate(self._queue) if not q.first), len(self._queue))

    async def _attempt(self, queued: QueuedCommand, command: Command) -> dict[str, Any]:
        """Check, run and confirm one command; the result for the result topic."""
        service = queued.service
        try:
            now, max_age = time.time(), self._max_command_age
            check_fresh(command.sent_at, now=now, max_age=max_age)
            # Its age by the monotonic clock: a wall-clock jump cannot make it stale.
            check_fresh(queued.received_at, now=time.monotonic(), max_age=max_age,
                        what="received")  # fmt: skip
            reads_car = command.service.reads_car
            car_before = self._charger.status.get("car") if self._charger.polled else None
            if not self._charger.polled or reads_car:
                # Not polled yet: commands queued while we were away arrive right after
                # connecting, before the first poll. Look now instead of refusing them.
                # And the button acts on the car as it is now: by a poll up to
                # scan_interval old, a press after the car left stopped the charger
                # (frc=1, kept for the next car) instead of "no car connected".
                await self._charger.refresh()
            offline = self._charger.unreachable()
            if offline is not None:
                raise CommandError(f"charger offline: {offline}")
            hold_off = self._charger.hold_off
            if hold_off > 0:
                raise CommandError(f"rate limited by the cloud: retry after {hold_off:.0f} s")
            calls = command.service.plan(command.arguments, self._charger.status)
            car_now = self._charger.status.get("car")
            if reads_car and car_before is not None and car_now != car_before:
                # What the press was checked against on arrival (a site's pause) was the
                # state before: never act on another one, say so instead.
                raise CommandError(
                    f"the car's state changed since the last poll ({car_state_name(car_before)}"
                    f" -> {car_state_name(car_now)}): nothing sent, press again"
                )
        except CommandError as exc:
            self.stats.rejected += 1
            return rejection(queued, str(exc), self._refusals)

        async with self._charger.lock:  # one conversation with the charger at a time
            if self._sink is not None:
                try:
                    self._sink.command_started(queued, calls)
                except CommandError as exc:  # the journal cannot keep it: nothing sent
                    self.stats.rejected += 1
                    return rejection(queued, str(exc), self._refusals)
            self._sent = list(calls)
            log.debug("command_started", charger=self.name, service=service, calls=calls)
            # What a pushing charger sends from here on may show the writes: a delta
            # that comes before the read-back starts is not to be missed.
            since = self._charger.pushed
            applied, error = await self._apply(calls, since)
            unconfirmed: dict[str, dict[str, Any]] = {}
            if error is None:
                unconfirmed = await self._confirm(applied, since)
                if unconfirmed:
                    error = NOT_CONFIRMED
            else:
                await self._charger.read_back(since)  # show whatever did change
        # Look once more after the charger's once-a-second logic has acted (car state).
        self._charger.poll_soon(FOLLOW_UP_DELAY)
        if error is not None:
            self.stats.failed += 1
            self.last_failure = (time.time(), f"{service} failed: {error}")
            log.warning(
                "command_failed",
                charger=self.name,
                service=service,
                reason=error,
                applied=applied,
                unconfirmed=unconfirmed or None,
            )
            extra: dict[str, Any] = {"unconfirmed": unconfirmed} if unconfirmed else {}
            if error.startswith(OUTCOME_UNKNOWN):
                extra["sent"] = list(calls)  # as an interrupted command tells it
            return command_result(
                service,
                ok=False,
                request_id=command.request_id,
                error=error,
                applied=applied,
                **extra,
            )
        self.stats.ok += 1
        log.info("command_done", charger=self.name, service=service, applied=applied)
        blind = sorted({key for call in applied for key in call} & UNCONFIRMABLE)
        extra = {"unconfirmable": blind} if blind else {}
        return command_result(
            service, ok=True, request_id=command.request_id, applied=applied, **extra
        )

    async def _apply(
        self, calls: Sequence[SetCall], since: int
    ) -> tuple[list[SetCall], str | None]:
        """Send the set calls in order; stop at the first that fails for good."""
        applied: list[SetCall] = []
        for call in calls:
            log.debug("command_set", charger=self.name, call=call)
            try:
                await self._set_with_retry(call)
            except TransientError as exc:
                if not ACTIONS.isdisjoint(call):
                    # An action leaves nothing to look at: it may or may not have run.
                    return applied, (
                        f"{OUTCOME_UNKNOWN}: {exc}; the charger may have acted on"
                        f" {', '.join(sorted(ACTIONS & call.keys()))}: check it before"
                        " sending it again"
                    )
                # A set whose answer was lost may still have reached the charger:
                # look before calling it failed.
                if await self._confirm([call], since):
                    return applied, str(exc)
                log.info(
                    "set_answer_lost",
                    charger=self.name,
                    keys=sorted(call),
                    reason=str(exc),
                )
            except GoeError as exc:
                return applied, str(exc)
            applied.append(call)
        return applied, None

    async def _set_with_retry(self, call: SetCall) -> None:
        # A value (amp=10, frc=2) sent twice is harmless; an action (rst) is not, and
        # is sent once. A 4xx says the charger refused and asking again will not help,
        # and a 429 asks us to wait, not to ask again at once.
        try:
            await self._send(call)
        except RateLimited:
            raise
        except TransientError as exc:
            if not ACTIONS.isdisjoint(call):
                raise
            log.info("set_retry", charger=self.name, keys=sorted(call), reason=str(exc))
            await self._send(call)

    async def _confirm(self, applied: Sequence[SetCall], since: int) -> dict[str, dict[str, Any]]:
        """Read back until the charger shows every value set; what it still does not show.

        Each read-back takes what the charger pushed since the last look (the first:
        since ``since``, before the writes) at once, and waits only when nothing came;
        a delta that already showed the values costs no wait and no HTTP."""
        expected: dict[str, JsonValue] = {}
        for call in applied:
            expected.update(call)
        unconfirmed = unconfirmed_values(expected, self._charger.status)
        for delay in self._confirm_delays:
            if delay > 0:
                await asyncio.sleep(delay)
            read = await self._charger.read_back(since)
            since = self._charger.pushed  # the next look wants a message newer than this
            if read:
                unconfirmed = unconfirmed_values(expected, self._charger.status)
                log.debug("command_read_back", charger=self.name, unconfirmed=sorted(unconfirmed))
                if not unconfirmed:
                    break
            elif self._charger.unreachable() is not None:
                break  # the charger is gone: more read-backs would only wait for timeouts
        return unconfirmed
