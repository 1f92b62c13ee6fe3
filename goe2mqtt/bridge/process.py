"""The bridge: joins the go-e clients, the command journal and the MQTT session.

Bridge owns the MQTT session and one Charger per charger. Every command the
broker delivers is journaled before the broker is acknowledged, routed to its
charger's queue, and ends with exactly one result, which stays in the journal until
the broker has it: a crash, a kill -9 or a dead broker delays a result, never loses it.
"""

from __future__ import annotations

import asyncio
import functools
import gc
import time
from collections.abc import Callable, Coroutine, Sequence
from pathlib import Path
from typing import Any

import structlog

from goe2mqtt import __version__
from goe2mqtt.bridge.desk import CommandDesk
from goe2mqtt.bridge.fleet import make_chargers, publish_bridge_discovery
from goe2mqtt.bridge.health import write_health_file
from goe2mqtt.bridge.housekeeping import BIRTH_DELAY, BIRTH_SPACING, Housekeeping
from goe2mqtt.bridge.info import fleet_info
from goe2mqtt.bridge.ledger_out import LedgerOutput, price_topics
from goe2mqtt.bridge.loop_watch import LoopWatch
from goe2mqtt.bridge.memory import MemoryUpkeep
from goe2mqtt.bridge.operator_view import OperatorView
from goe2mqtt.bridge.own_mqtt import StreamBroker
from goe2mqtt.bridge.remembered import Remembered, remembered_chargers
from goe2mqtt.bridge.site_memory import site_memory
from goe2mqtt.bridge.sites import Sites
from goe2mqtt.bridge.startup import (
    derived_keys,
    first_polls_due,
    journal_path,
    open_journal,
    refuse_another_instance,
    session_options,
    start_spread,
)
from goe2mqtt.bridge.stopping import EXIT, STOP_WITHIN, StopBudget
from goe2mqtt.bridge.subscriptions import session_subscriptions
from goe2mqtt.bridge.watched import owner
from goe2mqtt.bridge.wind_down import RunTasks, wind_down
from goe2mqtt.catalogue import STATUS_KEYS
from goe2mqtt.charger.loop import Charger
from goe2mqtt.commands.journal import Journal
from goe2mqtt.commands.payloads import result_json
from goe2mqtt.commands.runner import CONFIRM_DELAYS
from goe2mqtt.config.settings import Settings
from goe2mqtt.goe.factory import open_transport
from goe2mqtt.goe.pool import PoolStats, http_session
from goe2mqtt.goe.pushed import KeyFilter
from goe2mqtt.mqtt.session import InboundMessage, MqttSession, Subscription
from goe2mqtt.mqtt.topics import RESULT_LEAF, Topics
from goe2mqtt.util.aio import wait_until_set
from goe2mqtt.util.values import iso

log = structlog.get_logger()

# Bridge info is refreshed this often, at most every keepalive/4: it doubles as the
# heartbeat whose PUBACK, missing for keepalive/2, makes /readyz fail within 3/4 of
# the keep-alive of a broker's freeze (the connection ends after ~1.5x keepalive).
INFO_INTERVAL = 30.0
JOURNAL_PRUNE_EVERY = 3600.0


class Bridge:
    """The daemon: one MQTT session, one HTTP pool, a Charger per charger."""

    def __init__(
        self,
        settings: Settings,
        *,
        birth_delay: tuple[float, float] = BIRTH_DELAY,
        birth_spacing: float = BIRTH_SPACING,
        confirm_delays: Sequence[float] = CONFIRM_DELAYS,
        info_interval: float = INFO_INTERVAL,
        stop_within: float = STOP_WITHIN,
        ledger_clock: Callable[[], float] = time.time,  # tests: the wall clock of the books
    ):
        self.settings = settings
        mqtt = settings.mqtt
        self.topics = Topics(
            mqtt.base_topic, shard=settings.shard.index if settings.shard is not None else None
        )
        self._prefix = mqtt.discovery_prefix if mqtt.discovery else None
        self._price_topics = price_topics(settings)  # the ledger's prices (Nord Pool, Tibber)
        # One fuse shared by several chargers: meter readings and site commands.
        self.sites = Sites(settings.sites, base=mqtt.base_topic, memory=site_memory(settings))
        # What a pushing charger's status may hold: only what the catalogue reads.
        self._keys = KeyFilter(STATUS_KEYS)
        self.derived_keys = derived_keys(settings)  # kept across restarts
        options = session_options(settings, self.topics)
        # Chargers on their own MQTT: their topics go to their transports, over a
        # connection of their own (commands stay alone on this session).
        self._own_mqtt = StreamBroker(options)
        self._configured = frozenset(c.name for c in settings.chargers)
        owned = [c.name for c in settings.owned_chargers()]
        shards = settings.shard.count if settings.shard is not None else None
        self.mqtt = MqttSession(
            options,
            [
                *session_subscriptions(self.topics, owned, prefix=self._prefix, shards=shards),
                *(Subscription(topic, qos=1) for topic in sorted(self._price_topics)),
                *self.sites.subscriptions(),
            ],
            on_connection=self._mqtt_connection_changed,
            on_new_session=self._mqtt_session_lost,
            owner=owner(self.topics, owned),
        )
        self._housekeeping = Housekeeping(
            self.mqtt,
            self.topics,
            prefix=self._prefix,
            configured=self._configured,
            sites=settings.sites,
            spawn=self._spawn,
            birth_delay=birth_delay,
            birth_spacing=birth_spacing,
            shards=shards,
        )
        self.chargers: dict[str, Charger] = {}
        self._pool = PoolStats()
        self.started = time.time()
        self._confirm_delays = tuple(confirm_delays)
        self._info_interval = min(info_interval, mqtt.keepalive / 4)
        self._stop_within = stop_within
        self._stop_budget: StopBudget | None = None  # from the first request_stop()
        self._stuck: int | None = None  # tasks the stop left running; None: not stopped yet
        self._stop = asyncio.Event()
        # Info and health are written every interval, and at once when MQTT connects or
        # drops: a health check must not report the broker state of up to 30 s ago.
        self._info_due = asyncio.Event()
        self._tasks: set[asyncio.Task[None]] = set()
        self._desk: CommandDesk | None = None  # opens with the journal, in run()
        self.ledger_out = LedgerOutput(self.topics, ledger_clock)  # the ledger opens in run()
        self._loop_watch = LoopWatch()
        self._memory = MemoryUpkeep()
        self._watched: list[asyncio.Task[None]] = []  # what /healthz sees run
        self._remembered: Remembered | None = None  # what the chargers told, in state_dir

    def _failing(self) -> list[str]:
        if self._stop.is_set():
            return ["stopping"]
        return [f"task {task.get_name()} ended" for task in self._watched if task.done()]

    def request_stop(self) -> None:
        self._stopping()  # the stop's deadline runs from the first request (a SIGTERM)
        self._stop.set()
        self._info_due.set()

    def _stopping(self) -> StopBudget:
        if self._stop_budget is None:
            self._stop_budget = StopBudget(self._stop_within)
        return self._stop_budget

    def _mqtt_connection_changed(self, connected: bool) -> None:
        self._info_due.set()

    def _mqtt_session_lost(self) -> None:
        if self._desk is not None:
            self._desk.session_lost()

    @property
    def desk(self) -> CommandDesk:
        assert self._desk is not None, "the desk opens with the journal in run()"
        return self._desk

    async def run(self) -> None:
        """Run until request_stop(); then publish offline and disconnect."""
        # First the journal: another instance on this state_dir and client_id (its lock)
        # stops start-up before anything is bound; then a port in use stops it at once.
        journal = open_journal(journal_path(self.settings))
        http = None
        try:
            if self.settings.http.enabled:
                from goe2mqtt.web.server import HttpServer  # aiohttp's web, prometheus_client

                look = OperatorView(self.chargers, self.mqtt, self._loop_watch,
                                    lambda: self._desk, self._failing, self.started)  # fmt: skip
                http = HttpServer(look, self.settings.http)
                await http.start()
            await self._run_journaled(journal)
        finally:
            journal.close()
            if http is not None:
                await http.stop()
            gc.enable()  # off during the stop (bridge/wind_down)
            if self._stuck is not None:  # the run had begun: its stop, as it went
                budget = self._stopping()
                budget.done(EXIT)
                log.info("bridge_stopped", results_pending=self.desk.results.pending,
                         within=budget.within, took=round(budget.elapsed(), 2),
                         stages=budget.taken, still_running=self._stuck)  # fmt: skip
                # Its last word: a stopped bridge's file read as healthy for max_age more.
                self._write_health(self.info(), mqtt_connected=False, stopped=True)

    async def _run_journaled(self, journal: Journal) -> None:
        self.ledger_out.open(self.settings)
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
            essential=self.sites.own_write,
            lowering=self.sites.own_lowering,
            site_write_dropped=self.sites.write_dropped,
        )
        try:
            if await refuse_another_instance(self.mqtt.options, self.topics, self._stop,
                                             wait=INFO_INTERVAL + 5):  # fmt: skip
                await self._run()
        finally:
            self.ledger_out.close()

    async def _run(self) -> None:
        headers = {"User-Agent": f"goe2mqtt/{__version__}"}
        owned = self.settings.owned_chargers()
        http, self._pool = http_session(len(owned), headers)  # a host name each
        remembered = self._remembered = remembered_chargers(self.settings)
        transport = functools.partial(open_transport, http, keys=self._keys, broker=self._own_mqtt,
                                      derived_keys=self.derived_keys)  # fmt: skip
        async with http:
            self.chargers.update(
                make_chargers(
                    self.settings,
                    transport,
                    self.mqtt,
                    topics=self.topics,
                    prefix=self._prefix,
                    confirm_delays=self._confirm_delays,
                    desk=self.desk,
                    remembered=remembered,
                    ledger=self.ledger_out.ledger,
                )
            )
            # Open sessions of chargers this bridge no longer has: closed, not left open.
            self.ledger_out.ledger.close_removed()
            for charger in self.chargers.values():
                await charger.publish_initial()
            if self._prefix is not None:
                await publish_bridge_discovery(self.mqtt, self.settings, self.topics, self._prefix)
            self.desk.recover(self.mqtt)
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
                asyncio.create_task(self.desk.results.publish_forever(self.mqtt), name="results"),
                asyncio.create_task(self.ledger_out.run(self.mqtt, self._stop), name="ledger"),
                *(
                    asyncio.create_task(
                        site.run(self.chargers, self.desk, self.mqtt), name=f"site:{site.name}"
                    )
                    for site in self.sites.runners.values()
                ),
            ]
            if self._own_mqtt.wanted:  # chargers on their own MQTT
                helpers.append(asyncio.create_task(self._own_mqtt.run(), name="charger-mqtt"))
            self._watched = [mqtt_task, *pollers, *workers, *helpers]
            self._spawn(self._info_after_first_polls())
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
                tasks = RunTasks(mqtt_task, pollers, workers, helpers, self._tasks)
                self._stuck = await wind_down(self._stopping(), tasks, self.chargers,
                                              desk=self.desk, derived_keys=self.derived_keys,
                                              ledger_out=self.ledger_out, mqtt=self.mqtt,
                                              topics=self.topics)  # fmt: skip

    # --- health -----------------------------------------------------------------------

    def info(self) -> dict[str, Any]:
        now = time.time()
        return {
            "version": __version__,
            "updated": iso(now),
            "started": iso(self.started),
            "uptime": round(now - self.started),
            **fleet_info(self.chargers, self.desk.unrouted),
            "results_pending": self.desk.results.pending,
            "results_refused": self.desk.results.refused,
            "journal": self.desk.journal_info(),
            "mqtt_backlog": self.mqtt.backlog,
            **self._own_mqtt.info(),
            "mqtt_refused": self.mqtt.refused_info(),
            "http": self._pool.info(),
            "loop": self._loop_watch.report(),
            "memory": self._memory.report(),
        }

    def _write_health(self, info: dict[str, Any], **last: Any) -> None:
        # With how long the broker has left us unanswered: a frozen one keeps its TCP
        # connection, and "connected" alone said healthy (as /readyz does not).
        mqtt, file = self.mqtt, self.settings.health_file
        if file is not None:
            write_health_file(Path(file), {**info, "mqtt_connected": mqtt.connected,
                "mqtt_unanswered": round(mqtt.unanswered, 1),
                "mqtt_keepalive": mqtt.options.keepalive, **last})  # fmt: skip

    def _first_polls_due(self) -> float:
        return first_polls_due([b.settings.scan_interval for b in self.chargers.values()])

    async def _info_after_first_polls(self) -> None:
        """Info and health once every charger has had its first poll: the ones written
        at connect, before any answer, said every charger offline for a whole interval."""
        deadline = time.monotonic() + 3 * self._first_polls_due()
        while not all(b.polled_once for b in self.chargers.values()):
            if time.monotonic() > deadline or await wait_until_set(self._stop, 1.0):
                return
        self._info_due.set()

    async def _publish_info_forever(self) -> None:
        pruned_at = time.monotonic()
        while not self._stop.is_set():
            if time.monotonic() - pruned_at > JOURNAL_PRUNE_EVERY:
                pruned_at = time.monotonic()
                self.desk.prune()
            if self._remembered is not None:
                self._remembered.save_owed()  # a write the disk refused, tried again
            self.desk.retry_journal()  # the journal's: what it owes, or a probe
            info = self.info()
            await self.mqtt.publish_retained(self.topics.bridge_info, result_json(info))
            self._write_health(info)
            await wait_until_set(self._info_due, self._info_interval)
            self._info_due.clear()

    # --- inbound MQTT (runs in the MQTT client's callback, before the PUBACK) ------------

    def _on_message(self, message: InboundMessage) -> None:
        # The inputs the config names (a price, a meter) first, by their exact topics:
        # one may lie under the discovery prefix (Home Assistant's mqtt_statestream
        # publishes states under homeassistant/...), which housekeeping takes for its
        # own - a meter there never reached its site.
        if message.topic in self._price_topics:
            self.ledger_out.ledger.offer_price(message.topic, message.payload)
            return
        if not self.sites.is_meter_topic(message.topic) and self._housekeeping.take(message):
            return
        if self.sites.is_site_topic(message.topic):
            task = self.sites.message(message, self.mqtt)
            if task is not None:
                self._tasks.add(task)
                task.add_done_callback(self._task_done)
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
