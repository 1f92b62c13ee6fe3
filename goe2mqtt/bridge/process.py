"""The bridge: joins the go-e clients, the command journal and the MQTT session.

Bridge owns the MQTT session and one Charger per charger. Every command the
broker delivers is journaled before the broker is acknowledged, routed to its
charger's queue, and ends with exactly one result, which stays in the journal until
the broker has it: a crash, a kill -9 or a dead broker delays a result, never loses it.
"""

from __future__ import annotations

import asyncio
import functools
import json
import random
import resource
import time
from collections.abc import Collection, Coroutine, Iterable, Sequence
from pathlib import Path
from typing import Any

import structlog

from goe2mqtt import __version__
from goe2mqtt.bridge.desk import CommandDesk
from goe2mqtt.bridge.health import write_health_file
from goe2mqtt.bridge.info import fleet_info
from goe2mqtt.bridge.loop_watch import LoopWatch
from goe2mqtt.bridge.memory import MemoryUpkeep
from goe2mqtt.bridge.own_mqtt import OwnMqttChargers
from goe2mqtt.bridge.remembered import Remembered
from goe2mqtt.bridge.sites import Sites
from goe2mqtt.catalogue import STATUS_KEYS
from goe2mqtt.catalogue.facts import DeviceFacts
from goe2mqtt.charger.loop import Charger
from goe2mqtt.commands.journal import Journal, JournalCorrupt
from goe2mqtt.commands.runner import CONFIRM_DELAYS
from goe2mqtt.commands.services import result_json
from goe2mqtt.config.settings import Settings
from goe2mqtt.goe.channels import open_transport
from goe2mqtt.goe.pool import PoolStats, http_session
from goe2mqtt.goe.pushed import KeyFilter
from goe2mqtt.homeassistant.bridge_device import render_bridge_discovery
from goe2mqtt.homeassistant.discovery import discovery_filter, expected_discovery_topics
from goe2mqtt.homeassistant.site_device import render_site_discovery
from goe2mqtt.mqtt.client import another_live_instance
from goe2mqtt.mqtt.session import InboundMessage, MqttOptions, MqttSession, Subscription
from goe2mqtt.mqtt.topics import OFFLINE, RESULT_LEAF, Topics
from goe2mqtt.util.aio import wait_until_set
from goe2mqtt.util.values import iso

log = structlog.get_logger()

BIRTH_DELAY = (0.5, 2.0)  # spread republishing after HA restarts, as HA recommends
# Bridge info is refreshed this often, at most every keepalive/2: it doubles as the
# heartbeat whose missing PUBACK reveals a frozen broker within ~1.5x keepalive.
INFO_INTERVAL = 30.0
POLL_START_RATE = 50.0  # first polls per second at start-up, so a fleet does not burst
# ... but spread over no more than a scan interval, unless that means more first polls a
# second than this: each is a new (TLS) connection, and a thousand handshakes a second
# time out on a small machine (docs/scaling.md has the figures).
MAX_START_RATE = 250.0
COMMAND_GRACE = 10.0  # on stop, a running command may finish for this long
JOURNAL_PRUNE_EVERY = 3600.0


class AnotherInstance(Exception):
    """A live bridge already serves these topics."""


def session_options(settings: Settings, topics: Topics) -> MqttOptions:
    """The MQTT session the settings describe (the bridge's; checks use it too)."""
    mqtt = settings.mqtt
    return MqttOptions(
        host=mqtt.host,
        port=mqtt.port,
        username=mqtt.username,
        password=mqtt.password.get_secret_value() if mqtt.password else None,
        client_id=mqtt.client_id,
        keepalive=mqtt.keepalive,
        availability_topic=topics.bridge_availability,
        protocol=mqtt.protocol,
        session_expiry=mqtt.max_command_age,
        tls=mqtt.tls.context() if mqtt.tls is not None else None,
    )


def start_spread(fleet: int, scan_interval: float) -> float:
    """Seconds over which a charger's first poll falls at start-up."""
    return max(min(scan_interval, fleet / POLL_START_RATE), fleet / MAX_START_RATE)


def journal_path(settings: Settings) -> Path:
    """{state_dir}/{client_id}.journal: one journal per MQTT session."""
    return Path(settings.state_dir) / f"{settings.mqtt.client_id}.journal"


def remembered_path(settings: Settings) -> Path:
    """{state_dir}/{client_id}.chargers.json: what the chargers told about themselves."""
    return Path(settings.state_dir) / f"{settings.mqtt.client_id}.chargers.json"


class Bridge:
    """The daemon: one MQTT session, one HTTP pool, a Charger per charger."""

    def __init__(
        self,
        settings: Settings,
        *,
        birth_delay: tuple[float, float] = BIRTH_DELAY,
        confirm_delays: Sequence[float] = CONFIRM_DELAYS,
        info_interval: float = INFO_INTERVAL,
        command_grace: float = COMMAND_GRACE,
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
            Subscription(
                self.topics.command_filter, qos=1, no_local=True, retain_as_published=True
            ),
            # Only to find chargers retained from earlier runs that are no longer configured.
            Subscription(self.topics.availability_filter, qos=0, retained_only=True),
        ]
        # One fuse shared by several chargers: meter readings and site commands.
        self.sites = Sites(settings.sites, base=mqtt.base_topic)
        subscriptions += self.sites.subscriptions()
        self._expected_discovery: set[str] = set()
        self._foreign_discovery_seen = 0
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
        # What a pushing charger's status may hold: only what the catalogue reads.
        self._keys = KeyFilter(STATUS_KEYS)
        options = session_options(settings, self.topics)
        # Chargers on their own MQTT: their topics go to their transports, over a
        # connection of their own (commands stay alone on this session).
        self._own_mqtt = OwnMqttChargers(settings.owned_chargers(), options, self._keys)
        self.mqtt = MqttSession(
            options,
            subscriptions,
            on_connection=self._mqtt_connection_changed,
            on_new_session=self._mqtt_session_lost,
        )
        self.chargers: dict[str, Charger] = {}
        self._pool = PoolStats()
        self._configured = frozenset(c.name for c in settings.chargers)
        self.started = time.time()
        self._birth_delay = birth_delay
        self._birth_pending = False
        self._confirm_delays = tuple(confirm_delays)
        self._info_interval = min(info_interval, mqtt.keepalive / 2)
        self._command_grace = command_grace
        self._stop = asyncio.Event()
        # Info and health are written every interval, and at once when MQTT connects or
        # drops: a health check must not report the broker state of up to 30 s ago.
        self._info_due = asyncio.Event()
        self._tasks: set[asyncio.Task[None]] = set()
        self._desk: CommandDesk | None = None  # opens with the journal, in run()
        self._loop_watch = LoopWatch()
        self._memory = MemoryUpkeep()

    def request_stop(self) -> None:
        self._stop.set()
        self._info_due.set()

    def _mqtt_connection_changed(self, connected: bool) -> None:
        self._info_due.set()
        if self._desk is not None:
            self._desk.connection_changed(connected)

    def _mqtt_session_lost(self) -> None:
        if self._desk is not None:
            self._desk.session_lost()

    @property
    def desk(self) -> CommandDesk:
        assert self._desk is not None, "the desk opens with the journal in run()"
        return self._desk

    async def run(self) -> None:
        """Run until request_stop(); then publish offline and disconnect."""
        journal = open_journal(journal_path(self.settings))
        shard = self.settings.shard
        self._desk = CommandDesk(
            journal,
            self.chargers,
            topics=self.topics,
            configured=self._configured,
            answers_unknown=shard is None or shard.index == 0,
            secrets=self.settings.secrets(),
            on_health_change=self._info_due.set,
            guard=self.sites.refusal,
        )
        try:
            # Two bridges on the same topics would run every command twice; with one
            # client id they would also knock each other off the broker every second.
            if await another_live_instance(
                self.mqtt.options, self.topics.bridge_info, wait=INFO_INTERVAL + 5
            ):
                raise AnotherInstance(
                    f"another goe2mqtt is live on {self.topics.bridge}/ (online, and its"
                    " info refreshes): stop it, or give this one its own base_topic"
                    " (or shard) and client_id"
                )
            await self._run()
        finally:
            journal.close()

    async def _run(self) -> None:
        headers = {"User-Agent": f"goe2mqtt/{__version__}"}
        owned = self.settings.owned_chargers()
        http, self._pool = http_session(len(owned), headers)  # a host name each
        remembered = Remembered(remembered_path(self.settings))
        async with http:
            for charger in self.settings.owned_chargers():
                self.chargers[charger.name] = Charger(
                    charger,
                    self._own_mqtt.transports.get(charger.name)
                    or open_transport(http, charger, self._keys),
                    self.mqtt,
                    topics=self.topics,
                    discovery_prefix=self._prefix,
                    max_command_age=self.settings.mqtt.max_command_age,
                    confirm_delays=self._confirm_delays,
                    sink=self.desk,
                    leaf_topics=self.settings.mqtt.leaf_topics,
                    known_serial=remembered.serial(charger.name),
                    on_serial=functools.partial(remembered.learn_serial, charger.name),
                    known_facts=_facts_of(remembered, charger.name),
                    on_facts=functools.partial(_remember_facts, remembered, charger.name),
                )
            for bridge in self.chargers.values():
                await bridge.publish_initial()
            if self._prefix is not None:
                bridge_configs = render_bridge_discovery(prefix=self._prefix, topics=self.topics)
                for topic, payload in bridge_configs.items():
                    await self.mqtt.publish_retained(topic, payload)
                for site in self.settings.sites:
                    configs = render_site_discovery(prefix=self._prefix, topics=self.topics,
                                                    site=site)  # fmt: skip
                    for topic, payload in configs.items():
                        await self.mqtt.publish_retained(topic, payload)
            self.desk.recover()
            log.info("bridge_started", version=__version__, chargers=list(self.chargers))

            mqtt_task = asyncio.create_task(self.mqtt.run(self._on_message), name="mqtt")
            fleet = len(self.chargers)
            pollers = [
                asyncio.create_task(
                    b.run(start_spread(fleet, b.settings.scan_interval)), name=f"poll:{b.name}"
                )
                for b in self.chargers.values()
            ]
            workers = [
                asyncio.create_task(b.serve_commands(), name=f"commands:{b.name}")
                for b in self.chargers.values()
            ]
            helpers = [
                asyncio.create_task(self._publish_info_forever(), name="info"),
                asyncio.create_task(self._loop_watch.run(), name="loop-watch"),
                asyncio.create_task(
                    self._memory.run(
                        self._stop,
                        ready=lambda: all(b.polled_once for b in self.chargers.values()),
                        at_most=3 * self._first_polls_due(),
                    ),
                    name="memory",
                ),
                asyncio.create_task(self.desk.publish_forever(self.mqtt), name="results"),
                *(asyncio.create_task(site.run(self.chargers, self.desk, self.mqtt),
                                      name=f"site:{site.name}")
                  for site in self.sites.runners.values()),
            ]  # fmt: skip
            if self._own_mqtt.connection is not None:  # chargers on their own MQTT
                helpers.append(
                    asyncio.create_task(self._own_mqtt.connection.run(), name="charger-mqtt")
                )
            stop_task = asyncio.create_task(self._stop.wait(), name="stop")
            try:
                done, _ = await asyncio.wait(
                    {mqtt_task, stop_task, *pollers, *workers, *helpers},
                    return_when=asyncio.FIRST_COMPLETED,
                )
                for task in done - {stop_task}:
                    task.result()  # a task that ends on its own is a bug: let it surface
            finally:
                self.request_stop()  # the info loop watches this, whatever ended the run
                stop_task.cancel()
                await stop_pollers(self.chargers.values(), [*pollers, *self._tasks])
                # The running command may finish; one cut off gets "outcome unknown".
                if workers:  # a shard may own no charger
                    _, late = await asyncio.wait(workers, timeout=self._command_grace)
                    await stop_pollers((), late)
                await self.desk.flush(self.mqtt)
                await stop_pollers((), helpers)
                final = [(self.topics.availability(n), OFFLINE.encode()) for n in self.chargers]
                self.mqtt.stop(final)
                _, pending = await asyncio.wait({mqtt_task}, timeout=10)
                for task in pending:
                    task.cancel()
                log.info("bridge_stopped", results_pending=self.desk.results_pending)

    # --- health -----------------------------------------------------------------------

    def info(self) -> dict[str, Any]:
        now = time.time()
        return {
            "version": __version__,
            "updated": iso(now),
            "started": iso(self.started),
            "uptime": round(now - self.started),
            **fleet_info(self.chargers, self.desk.unrouted),
            "results_pending": self.desk.results_pending,
            "results_refused": self.desk.results_refused,
            "journal": self.desk.journal_info(),
            "mqtt_backlog": self.mqtt.backlog,
            **self._own_mqtt.info(),
            "mqtt_refused": self.mqtt.refused_info(),
            "http": self._pool.info(),
            "loop": self._loop_watch.report(),
            "memory": self._memory.report(),
        }

    def _first_polls_due(self) -> float:
        """Seconds from start until every charger's first poll is due."""
        fleet = len(self.chargers)
        return max(
            (start_spread(fleet, b.settings.scan_interval) + b.settings.scan_interval
             for b in self.chargers.values()),
            default=0.0,
        )  # fmt: skip

    async def _publish_info_forever(self) -> None:
        pruned_at = time.monotonic()
        while not self._stop.is_set():
            if time.monotonic() - pruned_at > JOURNAL_PRUNE_EVERY:
                pruned_at = time.monotonic()
                self.desk.prune()
            info = self.info()
            await self.mqtt.publish_retained(self.topics.bridge_info, result_json(info))
            if self.settings.health_file is not None:
                write_health_file(
                    Path(self.settings.health_file), {**info, "mqtt_connected": self.mqtt.connected}
                )
            await wait_until_set(self._info_due, self._info_interval)
            self._info_due.clear()

    # --- inbound MQTT (runs in the MQTT client's callback, before the PUBACK) ------------

    def _on_message(self, message: InboundMessage) -> None:
        if self._prefix is not None and message.topic == f"{self._prefix}/status":
            if message.payload.strip().lower() == b"online" and not self._birth_pending:
                self._birth_pending = True  # HA births in a row make one republish
                self._spawn(self._republish_after_birth())
            return
        if self._prefix is not None and message.topic.startswith(f"{self._prefix}/"):
            if message.payload and message.topic not in self._expected_discovery:
                if points_under(message.payload, self.topics.base):
                    self._spawn(self._remove_stale_discovery(message.topic))
                elif self._foreign_discovery_seen < 1:
                    # Another installation whose base topic makes the same node id
                    # (inst/a and inst_a): its configs are not ours to remove.
                    self._foreign_discovery_seen += 1
                    log.warning(
                        "discovery_of_another_installation",
                        topic=message.topic,
                        hint="another goe2mqtt's base_topic maps to the same discovery"
                        f" node id as {self.topics.base!r}: give one of them another"
                        " base_topic, or the two may overwrite each other's entities",
                    )
            return
        if self.sites.is_site_topic(message.topic):
            task = self.sites.message(message, self.mqtt)
            if task is not None:
                self._tasks.add(task)
                task.add_done_callback(self._task_done)
            return
        removed = self.topics.charger_of_availability(message.topic)
        if removed is not None:
            if message.payload and removed not in self._configured:
                self._spawn(self._remove_stale_charger(removed))
            return
        parsed = self.topics.parse_command(message.topic)
        if parsed is None or parsed[1] == RESULT_LEAF:
            return  # our own results come back through the wildcard
        self.desk.accept(*parsed, message)  # answers whatever it cannot run; never raises

    def _spawn(self, coro: Coroutine[Any, Any, None]) -> None:
        task = asyncio.create_task(coro)
        self._tasks.add(task)
        task.add_done_callback(self._task_done)

    def _task_done(self, task: asyncio.Task[None]) -> None:
        self._tasks.discard(task)
        if not task.cancelled() and task.exception() is not None:
            log.error("task_failed", error=repr(task.exception()))

    async def _republish_after_birth(self) -> None:
        try:
            await asyncio.sleep(random.uniform(*self._birth_delay))
        finally:
            self._birth_pending = False
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


def _facts_of(remembered: Remembered, charger: str) -> DeviceFacts | None:
    data = remembered.facts(charger)
    return None if data is None else DeviceFacts.from_json(data)


def _remember_facts(remembered: Remembered, charger: str, facts: DeviceFacts) -> None:
    remembered.learn_facts(charger, facts.to_json())


def points_under(config: bytes, base: str) -> bool:
    """Whether a retained discovery config is one this installation published: its
    state or availability topics lie under our base topic."""
    try:
        payload = json.loads(config)
    except (ValueError, RecursionError):
        return False
    if not isinstance(payload, dict):
        return False
    topics = [payload.get("state_topic"), payload.get("availability_topic")]
    availability = payload.get("availability")
    if isinstance(availability, list):
        topics += [a.get("topic") for a in availability if isinstance(a, dict)]
    return any(isinstance(t, str) and t.startswith(f"{base}/") for t in topics)


def open_journal(path: Path) -> Journal:
    """The journal; a corrupt one is moved aside (its commands cannot be read anyway)
    and a fresh one started, so a broken file never keeps the bridge down."""
    try:
        return Journal(path)
    except JournalCorrupt as exc:
        aside = Journal.move_aside(path, time.strftime("%Y%m%dT%H%M%S"))
        log.error(
            "journal_corrupt",
            file=str(path),
            reason=str(exc),
            moved_to=str(aside),
            action="started with an empty journal: commands it held get no result",
        )
        return Journal(path)


async def stop_pollers(
    chargers: Iterable[Charger], tasks: Collection[asyncio.Task[None]]
) -> None:
    """Stop the poll loops and command tasks, whatever a library did with the cancel."""
    for charger in chargers:
        charger.stop()
    for task in tasks:
        task.cancel()
    await asyncio.gather(*tasks, return_exceptions=True)


def raise_open_file_limit() -> None:
    """One socket per charger: a fleet needs more than the usual soft limit of 1024."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft < hard:
        try:
            resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
        except (ValueError, OSError) as exc:
            log.warning("open_file_limit", soft=soft, hard=hard, error=str(exc))

