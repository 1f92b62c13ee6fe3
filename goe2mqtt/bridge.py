"""The bridge: joins the go-e clients and the MQTT session.

One ChargerBridge per charger polls, maps the status through the catalogue,
publishes what changed and runs commands. Bridge owns the MQTT session and
routes inbound messages.
"""

from __future__ import annotations

import asyncio
import json
import random
import re
import time
from collections.abc import Collection, Coroutine, Iterable, Mapping, Sequence
from dataclasses import asdict, dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, Protocol

import aiohttp
import structlog

from goe2mqtt import __version__
from goe2mqtt.aio import wait_until_set
from goe2mqtt.catalogue import STATUS_KEYS, format_state, read_states
from goe2mqtt.commands import CommandError, SetCall, check_fresh, parse_command, request_id_of
from goe2mqtt.config import ChargerSettings, Settings
from goe2mqtt.discovery import (
    OFFLINE,
    ONLINE,
    RESULT_LEAF,
    DeviceFacts,
    Topics,
    discovery_filter,
    expected_discovery_topics,
    render_discovery,
)
from goe2mqtt.goe import GoeClient, GoeError, JsonValue, TransientError
from goe2mqtt.health import write_health_file
from goe2mqtt.mqtt import InboundMessage, MqttOptions, MqttSession, Subscription

log = structlog.get_logger()

OFFLINE_AFTER_FAILURES = 3  # transient failures in a row before a charger counts as offline
MAX_BACKOFF_FACTOR = 3  # polling slows to at most 3x scan_interval while failing
FOLLOW_UP_DELAY = 1.5  # the charger's logic runs once a second: look again after a command
BIRTH_DELAY = (0.5, 2.0)  # spread republishing after HA restarts, as HA recommends
# The cloud answers a set with 202 "forwarded, no guarantee": read the status back
# after these pauses (about 5 s in all) until the charger shows the new values.
CONFIRM_DELAYS = (0.0, 1.5, 3.5)
INFO_INTERVAL = 30.0  # seconds between refreshes of {base}/bridge/info
NOT_CONFIRMED = "not confirmed"
SERIAL_RE = re.compile(r"[0-9]{6}")
CAR_IDLE = 1  # go-e car state: no car connected
POLL_START_RATE = 50.0  # first polls per second at start-up, so a fleet does not burst


@dataclass
class CommandStats:
    ok: int = 0
    rejected: int = 0  # invalid input: never reached the charger
    failed: int = 0  # the charger refused, did not answer or did not confirm


def _iso(timestamp: float | None) -> str | None:
    if timestamp is None:
        return None
    return datetime.fromtimestamp(timestamp, UTC).isoformat(timespec="seconds")


def serial_from_status(status: Mapping[str, Any]) -> str | None:
    serial = status.get("sse")
    return serial if isinstance(serial, str) and SERIAL_RE.fullmatch(serial) else None


def unconfirmed_values(
    expected: Mapping[str, JsonValue], status: Mapping[str, Any]
) -> dict[str, dict[str, Any]]:
    """The keys whose status value is not what we set yet."""
    return {
        key: {"expected": value, "actual": status.get(key)}
        for key, value in expected.items()
        if status.get(key) != value or isinstance(status.get(key), bool) != isinstance(value, bool)
    }


class Publisher(Protocol):
    async def publish_retained(self, topic: str, payload: str | bytes) -> None: ...

    async def publish(self, topic: str, payload: str | bytes, *, qos: int = 1) -> bool: ...


def command_result(
    service: str, *, ok: bool, request_id: JsonValue, error: str | None = None, **extra: Any
) -> dict[str, Any]:
    result: dict[str, Any] = {"service": service, "ok": ok}
    if error is not None:
        result["error"] = error
    if request_id is not None:
        result["id"] = request_id
    result.update(extra)
    return result


def rejection(charger: str, service: str, raw: bytes, reason: str) -> dict[str, Any]:
    log.warning("command_rejected", charger=charger, service=service, reason=reason)
    return command_result(service, ok=False, request_id=request_id_of(raw), error=reason)


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
        self._problems: dict[str, str] = {}
        self._published: dict[str, str] = {}  # state texts last handed to the publisher
        self._facts: DeviceFacts | None = None
        self._lock = asyncio.Lock()  # one conversation with the charger at a time
        self._wake = asyncio.Event()
        self._stopping = False
        self._max_command_age = max_command_age
        self._confirm_delays = tuple(confirm_delays)
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

    async def _publish_states(self, status: Mapping[str, Any]) -> None:
        states, problems = read_states(status)
        for key in problems.keys() - self._problems.keys():
            log.warning("value_unreadable", charger=self.name, entity=key, reason=problems[key])
        self._problems = problems
        formatted = {key: format_state(value) for key, value in states.items()}
        changed = [key for key, text in formatted.items() if self._published.get(key) != text]
        if not changed:
            return  # the common case: a quiet charger costs one comparison per entity
        self._published = formatted
        for key in changed:
            await self._publisher.publish_retained(
                self._topics.state(self.name, key), formatted[key]
            )
        await self._publisher.publish_retained(
            self._topics.json_state(self.name),
            json.dumps(states, sort_keys=True, ensure_ascii=False),
        )

    async def go_offline(self, reason: str) -> None:
        if self.online:
            log.warning("charger_offline", charger=self.name, reason=reason)
        self.online = False
        await self._publisher.publish_retained(self._topics.availability(self.name), OFFLINE)

    # --- polling ----------------------------------------------------------------------

    async def run(self, start_within: float = 1.0) -> None:
        # Spread the first polls of a fleet instead of a burst; the loop keeps the spread.
        await self._sleep(random.uniform(0, min(self.settings.scan_interval, start_within)))
        while not self._stopping:
            self._wake.clear()
            try:
                await self.refresh()
            except Exception:
                # A bug must not stop a charger from being watched; say so and go on.
                log.exception("poll_crashed", charger=self.name)
                self.failures += 1
            await self._sleep(self.next_delay())

    async def _sleep(self, seconds: float) -> None:
        await wait_until_set(self._wake, seconds)

    def stop(self) -> None:
        """Make run() return after the current poll.

        Cancellation alone is not enough: on Python 3.11 asyncio.wait_for, which
        libraries use inside every publish, drops a cancel that arrives as its
        future completes, and the loop would go on polling.
        """
        self._stopping = True
        self._wake.set()

    def next_delay(self) -> float:
        if self.failures:
            factor = min(2 ** (self.failures - 1), MAX_BACKOFF_FACTOR)
            return float(self.settings.scan_interval * factor)
        if self.status.get("car") == CAR_IDLE:
            # No car: only plugging one in can change anything. A command wakes us anyway.
            return self.settings.idle_interval
        return self.settings.scan_interval

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
        try:
            status = await self._client.status(STATUS_KEYS)
        except GoeError as exc:
            await self._poll_failed(exc)
            return False
        self.status = status
        self.last_success = time.time()
        if self.serial is None:
            self.serial = serial_from_status(status)
        recovered_after, self.failures = self.failures, 0
        await self._publish_discovery(DeviceFacts.from_status(status))
        await self._publish_states(status)
        if not self.online:
            self.online = True
            log.info("charger_online", charger=self.name, failed_polls=recovered_after)
            await self._publisher.publish_retained(self._topics.availability(self.name), ONLINE)
        return True

    async def _poll_failed(self, exc: GoeError) -> None:
        self.failures += 1
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

    async def execute(self, service: str, raw: bytes, *, retained: bool) -> dict[str, Any]:
        """Validate, run and confirm one command; the result for the result topic."""
        try:
            if retained:
                raise CommandError("retained command ignored: publish commands without retain")
            command = parse_command(service, raw)
            check_fresh(command.sent_at, now=time.time(), max_age=self._max_command_age)
            if not self.online and self.last_success is None and self.failures == 0:
                # Not polled yet: commands queued while we were away arrive right after
                # connecting, before the first poll. Look now instead of refusing them.
                await self.refresh()
            if not self.online:
                raise CommandError("charger offline")
            calls = command.service.plan(command.arguments, self.status)
        except CommandError as exc:
            self.commands.rejected += 1
            return rejection(self.name, service, raw, str(exc))

        async with self._lock:  # commands to one charger run one after the other
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
        # is harmless; a 4xx says the charger refused and asking again will not help.
        try:
            await self._client.set(call)
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
                if not unconfirmed:
                    break
        return unconfirmed

    def info(self) -> dict[str, Any]:
        return {
            "online": self.online,
            "last_poll": _iso(self.last_success),
            "consecutive_failures": self.failures,
            "commands": asdict(self.commands),
        }


class Bridge:
    """The daemon: one MQTT session, one HTTP pool, a ChargerBridge per charger."""

    def __init__(
        self,
        settings: Settings,
        *,
        birth_delay: tuple[float, float] = BIRTH_DELAY,
        confirm_delays: Sequence[float] = CONFIRM_DELAYS,
        info_interval: float = INFO_INTERVAL,
    ):
        self.settings = settings
        mqtt = settings.mqtt
        self.topics = Topics(
            mqtt.base_topic, shard=settings.shard.index if settings.shard is not None else None
        )
        self._prefix = mqtt.discovery_prefix if mqtt.discovery else None
        # QoS 1 on a persistent session: commands sent while we are away wait for us.
        # no_local keeps our own results (same topic level) from coming back to us.
        subscriptions = [
            Subscription(self.topics.command_filter, qos=1, no_local=True),
            # Only to find chargers retained from earlier runs that are no longer configured.
            Subscription(self.topics.availability_filter, qos=0, retained_only=True),
        ]
        self._expected_discovery: set[str] = set()
        if self._prefix is not None:
            subscriptions += [
                Subscription(f"{self._prefix}/status", qos=1),
                # Only to find configs retained from earlier runs that are stale now.
                Subscription(
                    discovery_filter(self._prefix, mqtt.base_topic), qos=0, retained_only=True
                ),
            ]
            self._expected_discovery = expected_discovery_topics(
                self._prefix, mqtt.base_topic, (c.name for c in settings.chargers)
            )
        self.mqtt = MqttSession(
            MqttOptions(
                host=mqtt.host,
                port=mqtt.port,
                username=mqtt.username,
                password=mqtt.password.get_secret_value() if mqtt.password else None,
                client_id=mqtt.client_id,
                keepalive=mqtt.keepalive,
                availability_topic=self.topics.bridge_availability,
                protocol=mqtt.protocol,
                session_expiry=mqtt.max_command_age,
                tls=mqtt.tls.context() if mqtt.tls is not None else None,
            ),
            subscriptions,
            on_connection=self._mqtt_connection_changed,
        )
        self.chargers: dict[str, ChargerBridge] = {}
        self._configured = frozenset(c.name for c in settings.chargers)
        self.unrouted = CommandStats()  # commands for chargers we do not have
        self.started = time.time()
        self._birth_delay = birth_delay
        self._confirm_delays = tuple(confirm_delays)
        self._info_interval = info_interval
        self._stop = asyncio.Event()
        # Info and health are written every interval, and at once when MQTT connects or
        # drops: a health check must not report the broker state of up to 30 s ago.
        self._info_due = asyncio.Event()
        self._tasks: set[asyncio.Task[None]] = set()

    def request_stop(self) -> None:
        self._stop.set()
        self._info_due.set()

    def _mqtt_connection_changed(self, connected: bool) -> None:
        self._info_due.set()

    async def run(self) -> None:
        """Run until request_stop(); then publish offline and disconnect."""
        headers = {"User-Agent": f"goe2mqtt/{__version__}"}
        connector = aiohttp.TCPConnector(limit=64, ttl_dns_cache=300)
        async with aiohttp.ClientSession(connector=connector, headers=headers) as http:
            for charger in self.settings.owned_chargers():
                client = GoeClient(
                    http,
                    charger.base_url,
                    _token(charger),
                    timeout=charger.timeout,
                    local=charger.transport == "local",
                )
                self.chargers[charger.name] = ChargerBridge(
                    charger,
                    client,
                    self.mqtt,
                    topics=self.topics,
                    discovery_prefix=self._prefix,
                    max_command_age=self.settings.mqtt.max_command_age,
                    confirm_delays=self._confirm_delays,
                )
            for bridge in self.chargers.values():
                await bridge.publish_initial()
            log.info("bridge_started", version=__version__, chargers=list(self.chargers))

            mqtt_task = asyncio.create_task(self.mqtt.run(self._on_message), name="mqtt")
            start_within = len(self.chargers) / POLL_START_RATE
            pollers = [
                asyncio.create_task(b.run(start_within), name=f"poll:{b.name}")
                for b in self.chargers.values()
            ]
            pollers.append(asyncio.create_task(self._publish_info_forever(), name="info"))
            stop_task = asyncio.create_task(self._stop.wait(), name="stop")
            try:
                done, _ = await asyncio.wait(
                    {mqtt_task, stop_task, *pollers}, return_when=asyncio.FIRST_COMPLETED
                )
                for task in done - {stop_task}:
                    task.result()  # a task that ends on its own is a bug: let it surface
            finally:
                self.request_stop()  # the info loop watches this, whatever ended the run
                stop_task.cancel()
                await stop_pollers(self.chargers.values(), [*pollers, *self._tasks])
                final = [(self.topics.availability(n), OFFLINE.encode()) for n in self.chargers]
                self.mqtt.stop(final)
                _, pending = await asyncio.wait({mqtt_task}, timeout=10)
                for task in pending:
                    task.cancel()
                log.info("bridge_stopped")

    # --- health -----------------------------------------------------------------------

    def info(self) -> dict[str, Any]:
        now = time.time()
        chargers = {name: bridge.info() for name, bridge in self.chargers.items()}
        totals = CommandStats(**asdict(self.unrouted))
        for bridge in self.chargers.values():
            totals.ok += bridge.commands.ok
            totals.rejected += bridge.commands.rejected
            totals.failed += bridge.commands.failed
        return {
            "version": __version__,
            "updated": _iso(now),
            "started": _iso(self.started),
            "uptime": round(now - self.started),
            "chargers": chargers,
            "commands": asdict(totals),
        }

    async def _publish_info_forever(self) -> None:
        while not self._stop.is_set():
            info = self.info()
            await self.mqtt.publish_retained(
                self.topics.bridge_info, json.dumps(info, sort_keys=True)
            )
            if self.settings.health_file is not None:
                write_health_file(
                    Path(self.settings.health_file), {**info, "mqtt_connected": self.mqtt.connected}
                )
            await wait_until_set(self._info_due, self._info_interval)
            self._info_due.clear()

    # --- inbound MQTT -----------------------------------------------------------------

    def _on_message(self, message: InboundMessage) -> None:
        if self._prefix is not None and message.topic == f"{self._prefix}/status":
            if message.payload.strip().lower() == b"online":
                self._spawn(self._republish_after_birth())
            return
        if self._prefix is not None and message.topic.startswith(f"{self._prefix}/"):
            if message.payload and message.topic not in self._expected_discovery:
                self._spawn(self._remove_stale_discovery(message.topic))
            return
        removed = self.topics.charger_of_availability(message.topic)
        if removed is not None:
            if message.payload and removed not in self._configured:
                self._spawn(self._remove_stale_charger(removed))
            return
        parsed = self.topics.parse_command(message.topic)
        if parsed is None or parsed[1] == RESULT_LEAF:
            return  # our own results come back through the wildcard
        self._spawn(self._handle_command(*parsed, message))

    def _spawn(self, coro: Coroutine[Any, Any, None]) -> None:
        task = asyncio.create_task(coro)
        self._tasks.add(task)
        task.add_done_callback(self._task_done)

    def _task_done(self, task: asyncio.Task[None]) -> None:
        self._tasks.discard(task)
        if not task.cancelled() and task.exception() is not None:
            log.error("task_failed", error=repr(task.exception()))

    async def _handle_command(self, charger: str, service: str, message: InboundMessage) -> None:
        bridge = self.chargers.get(charger)
        if bridge is None and charger in self._configured:
            return  # another shard's charger: that instance answers
        if bridge is None:
            if self.settings.shard is not None and self.settings.shard.index != 0:
                return  # one answer per unknown charger: shard 0 gives it
            self.unrouted.rejected += 1
            result = rejection(charger, service, message.payload, f"unknown charger {charger!r}")
        else:
            result = await bridge.execute(service, message.payload, retained=message.retain)
        await self.mqtt.publish(self.topics.result(charger), json.dumps(result))

    async def _republish_after_birth(self) -> None:
        await asyncio.sleep(random.uniform(*self._birth_delay))
        log.info("home_assistant_online", action="republish")
        await self.mqtt.republish_retained()

    async def _remove_stale_charger(self, charger: str) -> None:
        # Left behind, its retained values would look current to every new subscriber.
        log.info("charger_removed", charger=charger, reason="no longer configured")
        for topic in self.topics.charger_retained(charger):
            await self.mqtt.clear_retained(topic)

    async def _remove_stale_discovery(self, topic: str) -> None:
        log.info("discovery_removed", topic=topic, reason="charger or entity no longer configured")
        await self.mqtt.clear_retained(topic)


async def stop_pollers(
    chargers: Iterable[ChargerBridge], tasks: Collection[asyncio.Task[None]]
) -> None:
    """Stop the poll loops and command tasks, whatever a library did with the cancel."""
    for charger in chargers:
        charger.stop()
    for task in tasks:
        task.cancel()
    await asyncio.gather(*tasks, return_exceptions=True)


def _token(charger: ChargerSettings) -> str | None:
    return charger.token.get_secret_value() if charger.token else None
