"""One charger: its poll loop, its published state and its command queue.

A ChargerBridge polls, maps the status through the catalogue, publishes what
changed, and runs its commands one at a time from a bounded queue. Freshness and
availability are checked when a command's turn comes, not only when it arrives.
It knows neither the journal nor the MQTT session: it reports through a sink.
"""

from __future__ import annotations

import asyncio
import json
import random
import re
import time
from collections import deque
from collections.abc import Mapping, Sequence
from dataclasses import asdict
from datetime import UTC, datetime
from typing import Any, Protocol

import structlog

from goe2mqtt.aio import wait_until_set
from goe2mqtt.catalogue import STATUS_KEYS, format_state, read_states
from goe2mqtt.commands import (
    CommandError,
    SetCall,
    check_fresh,
    command_result,
    parse_command,
    request_id_of,
)
from goe2mqtt.config import ChargerSettings
from goe2mqtt.discovery import OFFLINE, ONLINE, DeviceFacts, Topics, render_discovery
from goe2mqtt.goe import GoeClient, GoeError, JsonValue, RateLimited, TransientError
from goe2mqtt.outcomes import (
    NOT_CONFIRMED,
    CommandSink,
    CommandStats,
    QueuedCommand,
    interrupted,
    rejection,
    unconfirmed_values,
)

log = structlog.get_logger()

OFFLINE_AFTER_FAILURES = 3  # transient failures in a row before a charger counts as offline
MAX_BACKOFF_FACTOR = 3  # polling slows to at most 3x scan_interval while failing
MAX_RETRY_AFTER = 900.0  # a Retry-After longer than this is capped: we look again by then
FOLLOW_UP_DELAY = 1.5  # the charger's logic runs once a second: look again after a command
# The cloud answers a set with 202 "forwarded, no guarantee": read the status back
# after these pauses (about 5 s in all) until the charger shows the new values.
CONFIRM_DELAYS = (0.0, 1.5, 3.5)
MAX_QUEUED_COMMANDS = 20  # per charger; more waiting means the sender should slow down
SERIAL_RE = re.compile(r"[0-9]{6}")
CAR_IDLE = 1  # go-e car state: no car connected


class Publisher(Protocol):
    async def publish_retained(self, topic: str, payload: str | bytes) -> None: ...


def iso(timestamp: float | None) -> str | None:
    if timestamp is None:
        return None
    return datetime.fromtimestamp(timestamp, UTC).isoformat(timespec="seconds")


def serial_from_status(status: Mapping[str, Any]) -> str | None:
    serial = status.get("sse")
    return serial if isinstance(serial, str) and SERIAL_RE.fullmatch(serial) else None


class ChargerBridge:
    """One charger: poll loop, state publishing, command execution."""

    def __init__(
        self,
        settings: ChargerSettings,
        client: GoeClient,
        publisher: Publisher,
        *,
        topics: Topics,
        discovery_prefix: str | None,
        max_command_age: float = 300.0,
        confirm_delays: Sequence[float] = CONFIRM_DELAYS,
        sink: CommandSink | None = None,
        max_queued: int = MAX_QUEUED_COMMANDS,
    ) -> None:
        self.settings = settings
        self.name = settings.name
        self._client = client
        self._publisher = publisher
        self._topics = topics
        self._discovery_prefix = discovery_prefix
        self.status: dict[str, Any] = {}
        # Unique ids need the serial: a local charger configured without one tells it.
        self.serial = settings.serial
        self.online = False
        self.failures = 0
        self.last_success: float | None = None
        self._not_before = 0.0  # monotonic: the cloud asked us to wait (Retry-After)
        self._problems: dict[str, str] = {}
        self._published: dict[str, str] = {}  # state texts last handed to the publisher
        self._facts: DeviceFacts | None = None
        self._lock = asyncio.Lock()  # one conversation with the charger at a time
        self._wake = asyncio.Event()
        self._stopping = False
        self._max_command_age = max_command_age
        self._confirm_delays = tuple(confirm_delays)
        self._sink = sink
        self._queue: deque[QueuedCommand] = deque()
        self._max_queued = max_queued
        self._queued = asyncio.Event()
        self.last_error: tuple[float, str] | None = None  # (unix time, what went wrong)
        self.running: QueuedCommand | None = None
        self._sent: list[SetCall] | None = None  # set calls of the running command, once sent
        self.commands = CommandStats()

    # --- publishing -------------------------------------------------------------------

    async def publish_initial(self) -> None:
        """Before the first poll the charger's availability is unknown: say offline."""
        await self._publisher.publish_retained(self._topics.availability(self.name), OFFLINE)

    async def _publish_discovery(self, facts: DeviceFacts) -> None:
        if self._discovery_prefix is None or facts == self._facts or self.serial is None:
            return
        self._facts = facts
        configs = render_discovery(
            prefix=self._discovery_prefix,
            topics=self._topics,
            charger=self.name,
            serial=self.serial,
            facts=facts,
        )
        for topic, payload in configs.items():
            await self._publisher.publish_retained(topic, payload)

    async def _publish_states(self, status: Mapping[str, Any]) -> list[str]:
        states, problems = read_states(status)
        for key in problems.keys() - self._problems.keys():
            log.warning("value_unreadable", charger=self.name, entity=key, reason=problems[key])
        self._problems = problems
        formatted = {key: format_state(value) for key, value in states.items()}
        changed = [key for key, text in formatted.items() if self._published.get(key) != text]
        if not changed:
            return changed  # the common case: a quiet charger costs one comparison each
        self._published = formatted
        for key in changed:
            await self._publisher.publish_retained(
                self._topics.state(self.name, key), formatted[key]
            )
        await self._publisher.publish_retained(
            self._topics.json_state(self.name),
            json.dumps(states, sort_keys=True, ensure_ascii=False, allow_nan=False),
        )
        return changed

    async def go_offline(self, reason: str) -> None:
        if self.online:
            log.warning("charger_offline", charger=self.name, reason=reason)
        self.online = False
        await self._publisher.publish_retained(self._topics.availability(self.name), OFFLINE)
        # Waiting commands would only wait for a charger that is not there.
        while self._queue:
            self._refuse(self._queue.popleft(), f"charger offline: {reason}")

    # --- polling ----------------------------------------------------------------------

    async def run(self, start_within: float = 1.0) -> None:
        # Spread the first polls of a fleet instead of a burst; the loop keeps the spread.
        await self._sleep(random.uniform(0, min(self.settings.scan_interval, start_within)))
        while not self._stopping:
            self._wake.clear()
            try:
                await self.refresh()
            except Exception as exc:
                # A bug must not stop a charger from being watched, nor leave it
                # "online" with frozen values: it counts as a failed poll.
                log.exception("poll_crashed", charger=self.name)
                await self._poll_failed(GoeError(f"internal error: {type(exc).__name__}"))
            await self._sleep(self.next_delay())

    async def _sleep(self, seconds: float) -> None:
        await wait_until_set(self._wake, seconds)

    def stop(self) -> None:
        """Make run() and serve_commands() return after what they are doing now.

        Cancellation alone is not enough: on Python 3.11 asyncio.wait_for, which
        libraries use inside every publish, drops a cancel that arrives as its
        future completes, and the loop would go on polling.
        """
        self._stopping = True
        self._wake.set()
        self._queued.set()

    def next_delay(self) -> float:
        hold_off = self._not_before - time.monotonic()
        if self.failures:
            factor = min(2 ** (self.failures - 1), MAX_BACKOFF_FACTOR)
            return max(float(self.settings.scan_interval * factor), hold_off)
        if self.status.get("car") == CAR_IDLE:
            # No car: only plugging one in can change anything. A command wakes us anyway.
            return max(self.settings.idle_interval, hold_off)
        return max(self.settings.scan_interval, hold_off)

    def poll_soon(self, delay: float = 0.0) -> None:
        if delay <= 0:
            self._wake.set()
        else:
            asyncio.get_running_loop().call_later(delay, self._wake.set)

    async def refresh(self) -> bool:
        """Read the charger once and publish what changed; False if it did not answer."""
        async with self._lock:
            return await self._refresh_locked()

    async def _refresh_locked(self) -> bool:
        started = time.monotonic()
        try:
            status = await self._client.status(STATUS_KEYS)
        except GoeError as exc:
            await self._poll_failed(exc)
            return False
        took_ms = round((time.monotonic() - started) * 1000, 1)
        self.status = status
        self.last_success = time.time()
        if self.serial is None:
            self.serial = serial_from_status(status)
        recovered_after, self.failures = self.failures, 0
        await self._publish_discovery(DeviceFacts.from_status(status))
        changed = await self._publish_states(status)
        log.debug("poll", charger=self.name, ms=took_ms, changed=changed)
        if not self.online:
            self.online = True
            log.info("charger_online", charger=self.name, failed_polls=recovered_after)
            await self._publisher.publish_retained(self._topics.availability(self.name), ONLINE)
        return True

    async def _poll_failed(self, exc: GoeError) -> None:
        self.failures += 1
        self.last_error = (time.time(), f"poll failed: {exc}")
        if isinstance(exc, RateLimited) and exc.retry_after is not None:
            wait = min(exc.retry_after, MAX_RETRY_AFTER)
            self._not_before = max(self._not_before, time.monotonic() + wait)
        if self._facts is None:
            # Never reached yet: announce the entities anyway so HA shows them unavailable.
            await self._publish_discovery(DeviceFacts())
        if self.failures == 1:
            log.warning("poll_failed", charger=self.name, reason=str(exc))
        else:
            log.debug("poll_failed", charger=self.name, reason=str(exc), failures=self.failures)
        if exc.offline_now or self.failures >= OFFLINE_AFTER_FAILURES:
            await self.go_offline(str(exc))

    # --- commands ---------------------------------------------------------------------

    @property
    def queued(self) -> int:
        return len(self._queue)

    def submit(self, command: QueuedCommand) -> None:
        """Queue a command; it is refused at once if it cannot wait."""
        if self._polled and not self.online:
            self._refuse(command, "charger offline")
        elif len(self._queue) >= self._max_queued:
            self._refuse(command, f"queue full: {len(self._queue)} commands wait for {self.name}")
        else:
            self._queue.append(command)
            self._queued.set()
            log.debug(
                "command_queued",
                charger=self.name,
                service=command.service,
                seq=command.seq,
                waiting=len(self._queue),
            )

    @property
    def _polled(self) -> bool:
        return self.last_success is not None or self.failures > 0

    async def serve_commands(self) -> None:
        """Run queued commands one after the other until stop().

        A command cancelled while it runs (shutdown grace exceeded) still gets its
        result: outcome unknown if a set may have gone out, so nobody resends blindly.
        """
        while not self._stopping:
            if not self._queue:
                self._queued.clear()
                await self._queued.wait()
                continue
            command = self._queue.popleft()
            self.running, self._sent = command, None
            try:
                result = await self._execute(command)
            except asyncio.CancelledError:
                if self._sent is None:
                    self._queue.appendleft(command)  # never started: runs after the restart
                else:
                    self._report(command, interrupted(command, self._sent))
                raise
            except Exception as exc:
                log.exception("command_crashed", charger=self.name, service=command.service)
                self.commands.failed += 1
                result = command_result(
                    command.service,
                    ok=False,
                    request_id=request_id_of(command.payload),
                    error=f"internal error: {type(exc).__name__}",
                )
            finally:
                self.running = None
            self._report(command, result)

    def _report(self, command: QueuedCommand, result: dict[str, Any]) -> None:
        if self._sink is not None:
            self._sink.command_finished(command, result)

    def _refuse(self, command: QueuedCommand, reason: str) -> None:
        """Refuse a command that never reached the charger."""
        self.commands.rejected += 1
        self._report(command, rejection(command, reason))

    async def execute(self, command: QueuedCommand) -> dict[str, Any]:
        """Run one command now (outside the queue); its result."""
        self._sent = None
        return await self._execute(command)

    async def _execute(self, queued: QueuedCommand) -> dict[str, Any]:
        """Validate, run and confirm one command; the result for the result topic."""
        service = queued.service
        try:
            if queued.retained:
                raise CommandError("retained command ignored: publish commands without retain")
            command = parse_command(service, queued.payload)
            now, max_age = time.time(), self._max_command_age
            check_fresh(command.sent_at, now=now, max_age=max_age)
            check_fresh(queued.received, now=now, max_age=max_age, what="received")
            if not self._polled:
                # Not polled yet: commands queued while we were away arrive right after
                # connecting, before the first poll. Look now instead of refusing them.
                await self.refresh()
            if not self.online:
                raise CommandError("charger offline")
            hold_off = self._not_before - time.monotonic()
            if hold_off > 0:
                raise CommandError(f"rate limited by the cloud: retry after {hold_off:.0f} s")
            calls = command.service.plan(command.arguments, self.status)
        except CommandError as exc:
            self.commands.rejected += 1
            return rejection(queued, str(exc))

        async with self._lock:  # one conversation with the charger at a time
            self._sent = list(calls)
            if self._sink is not None:
                self._sink.command_started(queued, calls)
            log.debug("command_started", charger=self.name, service=service, calls=calls)
            applied, error = await self._apply(calls)
            unconfirmed: dict[str, dict[str, Any]] = {}
            if error is None:
                unconfirmed = await self._confirm(applied)
                if unconfirmed:
                    error = NOT_CONFIRMED
            else:
                await self._refresh_locked()  # show whatever did change
        # Look once more after the charger's once-a-second logic has acted (car state).
        self.poll_soon(FOLLOW_UP_DELAY)
        if error is not None:
            self.commands.failed += 1
            self.last_error = (time.time(), f"{service} failed: {error}")
            log.warning(
                "command_failed",
                charger=self.name,
                service=service,
                reason=error,
                applied=applied,
                unconfirmed=unconfirmed or None,
            )
            extra: dict[str, Any] = {"unconfirmed": unconfirmed} if unconfirmed else {}
            return command_result(
                service,
                ok=False,
                request_id=command.request_id,
                error=error,
                applied=applied,
                **extra,
            )
        self.commands.ok += 1
        log.info("command_done", charger=self.name, service=service, applied=applied)
        return command_result(service, ok=True, request_id=command.request_id, applied=applied)

    async def _apply(self, calls: Sequence[SetCall]) -> tuple[list[SetCall], str | None]:
        """Send the set calls in order; stop at the first that fails for good."""
        applied: list[SetCall] = []
        for call in calls:
            log.debug("command_set", charger=self.name, call=call)
            try:
                await self._set_with_retry(call)
            except TransientError as exc:
                # A set whose answer was lost may still have reached the charger:
                # look before calling it failed.
                if await self._confirm([call]):
                    return applied, str(exc)
                log.info("set_answer_lost", charger=self.name, keys=sorted(call), reason=str(exc))
            except GoeError as exc:
                return applied, str(exc)
            applied.append(call)
        return applied, None

    async def _set_with_retry(self, call: SetCall) -> None:
        # Every set we send is an absolute value (amp=10, frc=2), so sending it twice
        # is harmless; a 4xx says the charger refused and asking again will not help,
        # and a 429 asks us to wait, not to ask again at once.
        try:
            await self._client.set(call)
        except RateLimited:
            raise
        except TransientError as exc:
            log.info("set_retry", charger=self.name, keys=sorted(call), reason=str(exc))
            await self._client.set(call)

    async def _confirm(self, applied: Sequence[SetCall]) -> dict[str, dict[str, Any]]:
        """Read back until the charger shows every value set; what it still does not show."""
        expected: dict[str, JsonValue] = {}
        for call in applied:
            expected.update(call)
        unconfirmed = unconfirmed_values(expected, self.status)
        for delay in self._confirm_delays:
            if delay > 0:
                await asyncio.sleep(delay)
            if await self._refresh_locked():
                unconfirmed = unconfirmed_values(expected, self.status)
                log.debug(
                    "command_read_back", charger=self.name, unconfirmed=sorted(unconfirmed)
                )
                if not unconfirmed:
                    break
            elif not self.online:
                break  # the charger is gone: more read-backs would only wait for timeouts
        return unconfirmed

    def info(self) -> dict[str, Any]:
        return {
            "online": self.online,
            "last_poll": iso(self.last_success),
            "consecutive_failures": self.failures,
            "commands": asdict(self.commands),
            "queued_commands": len(self._queue),
        }
