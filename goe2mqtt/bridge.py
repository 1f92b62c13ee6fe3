"""The bridge: joins the go-e clients and the MQTT session.

One ChargerBridge per charger polls, maps the status through the catalogue,
publishes what changed and runs commands. Bridge owns the MQTT session and
routes inbound messages.
"""

from __future__ import annotations

import asyncio
import json
import random
import time
from collections.abc import Collection, Coroutine, Iterable, Mapping
from typing import Any, Protocol

import aiohttp
import structlog

from goe2mqtt import __version__
from goe2mqtt.aio import wait_until_set
from goe2mqtt.catalogue import STATUS_KEYS, format_state, read_states
from goe2mqtt.commands import CommandError, parse_command, request_id_of
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
from goe2mqtt.goe import GoeClient, GoeError, JsonValue
from goe2mqtt.mqtt import InboundMessage, MqttOptions, MqttSession

log = structlog.get_logger()

OFFLINE_AFTER_FAILURES = 3  # transient failures in a row before a charger counts as offline
MAX_BACKOFF_FACTOR = 3  # polling slows to at most 3x scan_interval while failing
FOLLOW_UP_DELAY = 1.5  # the charger's logic runs once a second: look again after a command
BIRTH_DELAY = (0.5, 2.0)  # spread republishing after HA restarts, as HA recommends


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
    ) -> None:
        self.settings = settings
        self.name = settings.name
        self._client = client
        self._publisher = publisher
        self._topics = topics
        self._discovery_prefix = discovery_prefix
        self.status: dict[str, Any] = {}
        self.online = False
        self.failures = 0
        self.last_success: float | None = None
        self._problems: dict[str, str] = {}
        self._facts: DeviceFacts | None = None
        self._lock = asyncio.Lock()  # one conversation with the charger at a time
        self._wake = asyncio.Event()
        self._stopping = False

    # --- publishing -------------------------------------------------------------------

    async def publish_initial(self) -> None:
        """Before the first poll the charger's availability is unknown: say offline."""
        await self._publisher.publish_retained(self._topics.availability(self.name), OFFLINE)

    async def _publish_discovery(self, facts: DeviceFacts) -> None:
        if self._discovery_prefix is None or facts == self._facts:
            return
        self._facts = facts
        configs = render_discovery(
            prefix=self._discovery_prefix,
            topics=self._topics,
            charger=self.name,
            serial=self.settings.serial,
            facts=facts,
        )
        for topic, payload in configs.items():
            await self._publisher.publish_retained(topic, payload)

    async def _publish_states(self, status: Mapping[str, Any]) -> None:
        states, problems = read_states(status)
        for key in problems.keys() - self._problems.keys():
            log.warning("value_unreadable", charger=self.name, entity=key, reason=problems[key])
        self._problems = problems
        for key, value in states.items():
            await self._publisher.publish_retained(
                self._topics.state(self.name, key), format_state(value)
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

    async def run(self) -> None:
        # Spread the first polls of a fleet over one interval instead of a burst.
        await self._sleep(random.uniform(0, min(self.settings.scan_interval, 1.0)))
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
        factor = min(2 ** max(self.failures - 1, 0), MAX_BACKOFF_FACTOR)
        return float(self.settings.scan_interval * factor)

    def poll_soon(self, delay: float = 0.0) -> None:
        if delay <= 0:
            self._wake.set()
        else:
            asyncio.get_running_loop().call_later(delay, self._wake.set)

    async def refresh(self) -> bool:
        """Read the charger once and publish what changed; False if it did not answer."""
        async with self._lock:
            try:
                status = await self._client.status(STATUS_KEYS)
            except GoeError as exc:
                await self._poll_failed(exc)
                return False
            self.status = status
            self.last_success = time.time()
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
            if not self.online:
                raise CommandError("charger offline")
            calls = command.service.plan(command.arguments, self.status)
        except CommandError as exc:
            return rejection(self.name, service, raw, str(exc))

        applied: list[dict[str, JsonValue]] = []
        error: str | None = None
        async with self._lock:
            for call in calls:
                try:
                    await self._client.set(call)
                except GoeError as exc:
                    error = str(exc)
                    break
                applied.append(call)
        # Show the effect now rather than at the next poll, and again once the
        # charger's once-a-second logic has acted on it.
        await self.refresh()
        self.poll_soon(FOLLOW_UP_DELAY)
        if error is not None:
            log.warning(
                "command_failed", charger=self.name, service=service, reason=error, applied=applied
            )
            return command_result(
                service, ok=False, request_id=command.request_id, error=error, applied=applied
            )
        log.info("command_done", charger=self.name, service=service, applied=applied)
        return command_result(service, ok=True, request_id=command.request_id, applied=applied)


class Bridge:
    """The daemon: one MQTT session, one HTTP pool, a ChargerBridge per charger."""

    def __init__(self, settings: Settings, *, birth_delay: tuple[float, float] = BIRTH_DELAY):
        self.settings = settings
        mqtt = settings.mqtt
        self.topics = Topics(mqtt.base_topic)
        self._prefix = mqtt.discovery_prefix if mqtt.discovery else None
        subscriptions = [(self.topics.command_filter, 1)]
        self._expected_discovery: set[str] = set()
        if self._prefix is not None:
            subscriptions += [
                (f"{self._prefix}/status", 1),
                # QoS 0: this echoes every config we publish, and inbound QoS 1 traffic
                # makes aiomqtt hold our own QoS 1 publishes for up to a second.
                (discovery_filter(self._prefix, mqtt.base_topic), 0),
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
            ),
            subscriptions,
        )
        self.chargers: dict[str, ChargerBridge] = {}
        self._birth_delay = birth_delay
        self._stop = asyncio.Event()
        self._tasks: set[asyncio.Task[None]] = set()

    def request_stop(self) -> None:
        self._stop.set()

    async def run(self) -> None:
        """Run until request_stop(); then publish offline and disconnect."""
        headers = {"User-Agent": f"goe2mqtt/{__version__}"}
        connector = aiohttp.TCPConnector(limit=64, ttl_dns_cache=300)
        async with aiohttp.ClientSession(connector=connector, headers=headers) as http:
            for charger in self.settings.chargers:
                client = GoeClient(http, charger.base_url, _token(charger), timeout=charger.timeout)
                self.chargers[charger.name] = ChargerBridge(
                    charger, client, self.mqtt, topics=self.topics, discovery_prefix=self._prefix
                )
            for bridge in self.chargers.values():
                await bridge.publish_initial()
            log.info("bridge_started", version=__version__, chargers=list(self.chargers))

            mqtt_task = asyncio.create_task(self.mqtt.run(self._on_message), name="mqtt")
            pollers = [
                asyncio.create_task(b.run(), name=f"poll:{b.name}") for b in self.chargers.values()
            ]
            stop_task = asyncio.create_task(self._stop.wait(), name="stop")
            try:
                done, _ = await asyncio.wait(
                    {mqtt_task, stop_task, *pollers}, return_when=asyncio.FIRST_COMPLETED
                )
                for task in done - {stop_task}:
                    task.result()  # a task that ends on its own is a bug: let it surface
            finally:
                stop_task.cancel()
                await stop_pollers(self.chargers.values(), [*pollers, *self._tasks])
                final = [(self.topics.availability(n), OFFLINE.encode()) for n in self.chargers]
                self.mqtt.stop(final)
                _, pending = await asyncio.wait({mqtt_task}, timeout=10)
                for task in pending:
                    task.cancel()
                log.info("bridge_stopped")

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
        if bridge is None:
            result = rejection(charger, service, message.payload, f"unknown charger {charger!r}")
        else:
            result = await bridge.execute(service, message.payload, retained=message.retain)
        await self.mqtt.publish(self.topics.result(charger), json.dumps(result))

    async def _republish_after_birth(self) -> None:
        await asyncio.sleep(random.uniform(*self._birth_delay))
        log.info("home_assistant_online", action="republish")
        await self.mqtt.republish_retained()

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
