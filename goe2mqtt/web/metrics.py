"""/metrics: Prometheus text exposition, by prometheus-client, from the bridge's state.

Nothing is counted per poll for it: a scrape reads what the bridge holds anyway
(custom collectors). The snapshot is taken on the event loop (plain values, quick);
the families and the text are made in a thread, so a scrape of a large fleet holds
the loop only for the snapshot.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Literal

from aiohttp import web
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest
from prometheus_client.core import (
    CounterMetricFamily,
    GaugeMetricFamily,
    HistogramMetricFamily,
    Metric,
)
from prometheus_client.process_collector import ProcessCollector

from goe2mqtt.catalogue import CAR_STATES
from goe2mqtt.web.keys import LOOK, SETTINGS
from goe2mqtt.web.view import BridgeLook, ChargerRow, DurationCounts

JOULES_PER_KWH = 3_600_000.0
_PROCESS = ProcessCollector(registry=None)  # RSS, CPU, open fds: not registered globally


@dataclass(frozen=True)
class Snapshot:
    """What one scrape shows, copied from the bridge at one moment."""

    version: str
    mqtt_connected: bool
    mqtt_disconnects: Mapping[str, int]
    journal_ok: bool
    results_pending: int
    loop_lag: float
    rows: list[ChargerRow]
    outcomes: Mapping[tuple[str, str, str], int]
    durations: DurationCounts
    now: float


def take_snapshot(look: BridgeLook, charger_metrics: str) -> Snapshot:
    durations = look.command_durations()
    return Snapshot(
        version=look.version,
        mqtt_connected=look.mqtt_connected,
        mqtt_disconnects=dict(look.mqtt_disconnects),
        journal_ok=look.journal_error is None,
        results_pending=look.results_pending,
        loop_lag=look.loop_lag,
        rows=[] if charger_metrics == "none" else list(look.rows()),
        outcomes=dict(look.command_outcomes()),
        durations=DurationCounts(
            durations.buckets,
            {k: list(v) for k, v in durations.counts.items()},
            dict(durations.sums),
        ),
        now=time.time(),
    )


def bridge_families(snap: Snapshot) -> Iterable[Metric]:
    build = GaugeMetricFamily("goe2mqtt_build_info", "goe2mqtt's version (value 1)",
                              labels=["version"])  # fmt: skip
    build.add_metric([snap.version], 1)
    yield build
    yield GaugeMetricFamily(
        "goe2mqtt_mqtt_connected", "1 while the MQTT session is up", value=snap.mqtt_connected
    )
    reconnects = CounterMetricFamily(
        "goe2mqtt_mqtt_reconnects", "MQTT connections lost or failed, by cause", labels=["cause"]
    )
    for cause, count in sorted(snap.mqtt_disconnects.items()):
        reconnects.add_metric([cause], count)
    yield reconnects
    yield GaugeMetricFamily(
        "goe2mqtt_journal_ok", "1 while the command journal can write", value=snap.journal_ok
    )
    yield GaugeMetricFamily(
        "goe2mqtt_journal_pending_results",
        "command results the broker has not acknowledged yet",
        value=snap.results_pending,
    )
    yield GaugeMetricFamily(
        "goe2mqtt_event_loop_lag_seconds",
        "the longest hold of the event loop in the last 30-60 s (every poll waited that long)",
        value=snap.loop_lag,
    )


def command_families(snap: Snapshot, per_charger: bool) -> Iterable[Metric]:
    commands = CounterMetricFamily(
        "goe2mqtt_commands",
        "commands by how they ended: applied, refused, not_confirmed, unknown, stale,"
        " offline, rate_limited, journal_failed, failed",
        labels=["charger", "service", "outcome"],
    )
    totals: dict[tuple[str, str, str], int] = {}
    for (charger, service, outcome), count in snap.outcomes.items():
        key = (charger if per_charger else "", service, outcome)
        totals[key] = totals.get(key, 0) + count
    for labels, count in sorted(totals.items()):
        commands.add_metric(list(labels), count)
    yield commands
    durations = snap.durations
    histogram = HistogramMetricFamily(
        "goe2mqtt_command_duration_seconds",
        "seconds from a command's delivery to its result, per service",
        labels=["service"],
    )
    for service, counts in sorted(durations.counts.items()):
        cumulative, buckets = 0, []
        for bound, count in zip([*map(str, durations.buckets), "+Inf"], counts, strict=True):
            cumulative += count
            buckets.append((bound, cumulative))
        histogram.add_metric([service], buckets, durations.sums.get(service, 0.0))
    yield histogram


def charger_families(
    snap: Snapshot, kind: Literal["all", "health", "none"] | str
) -> Iterable[Metric]:
    if kind == "none":
        return
    online = GaugeMetricFamily("goe2mqtt_charger_online", "1 while the charger answers",
                               labels=["charger"])  # fmt: skip
    info = GaugeMetricFamily(
        "goe2mqtt_charger_info",
        "the charger's model, firmware and transport (polling, websocket, cloud_websocket,"
        " mqtt, none); value 1",
        labels=["charger", "model", "firmware", "transport"],
    )
    age = GaugeMetricFamily(
        "goe2mqtt_charger_last_update_age_seconds",
        "seconds since the charger was last heard from (absent: never)",
        labels=["charger"],
    )
    polls = CounterMetricFamily(
        "goe2mqtt_charger_polls", "polls by outcome (ok, failed, rate_limited; pushed: messages"
        " a pushing charger sent)", labels=["charger", "outcome"],
    )  # fmt: skip
    reconnects = CounterMetricFamily(
        "goe2mqtt_charger_reconnects", "times the charger came back online after going offline",
        labels=["charger"],
    )  # fmt: skip
    for row in snap.rows:
        name = [row.name]
        online.add_metric(name, row.online)
        info.add_metric([row.name, row.model or "", row.firmware or "", row.transport], 1)
        if row.last_update is not None:
            age.add_metric(name, max(0.0, snap.now - row.last_update))
        for outcome, count in sorted(row.polls.items()):
            polls.add_metric([row.name, outcome], count)
        reconnects.add_metric(name, row.reconnects)
    yield from (online, info, age, polls, reconnects)
    if kind != "all":
        return
    power = GaugeMetricFamily("goe2mqtt_charger_power_watts", "charging power",
                              labels=["charger"])  # fmt: skip
    energy = CounterMetricFamily(
        "goe2mqtt_charger_energy_joules",
        "energy the charger delivered over its life",
        labels=["charger"],
    )
    current = GaugeMetricFamily("goe2mqtt_charger_current_amperes", "current per phase",
                                labels=["charger", "phase"])  # fmt: skip
    temperature = GaugeMetricFamily(
        "goe2mqtt_charger_temperature_celsius", "the charger's temperature", labels=["charger"]
    )
    names = ", ".join(f"{code} {name}" for code, name in CAR_STATES.items())
    car = GaugeMetricFamily("goe2mqtt_charger_car_state", f"go-e car state: {names}",
                            labels=["charger"])  # fmt: skip
    for row in snap.rows:
        name = [row.name]
        if row.power_watts is not None:
            power.add_metric(name, row.power_watts)
        if row.energy_total_kwh is not None:
            energy.add_metric(name, row.energy_total_kwh * JOULES_PER_KWH)
        for phase, amperes in zip(("1", "2", "3"), row.currents, strict=True):
            if amperes is not None:
                current.add_metric([row.name, phase], amperes)
        if row.temperature is not None:
            temperature.add_metric(name, row.temperature)
        if row.car_state is not None:
            car.add_metric(name, row.car_state)
    yield from (power, energy, current, temperature, car)


class _Families:
    """A collector over families made already (what generate_latest reads)."""

    def __init__(self, snap: Snapshot, charger_metrics: str) -> None:
        self._snap = snap
        self._kind = charger_metrics

    def collect(self) -> Iterable[Metric]:
        yield from bridge_families(self._snap)
        yield from command_families(self._snap, per_charger=self._kind != "none")
        yield from charger_families(self._snap, self._kind)
        yield from _PROCESS.collect()


def exposition(snap: Snapshot, charger_metrics: str) -> bytes:
    return generate_latest(_Families(snap, charger_metrics))


async def metrics_handler(request: web.Request) -> web.Response:
    kind = request.app[SETTINGS].charger_metrics
    snap = take_snapshot(request.app[LOOK], kind)
    body = await asyncio.to_thread(exposition, snap, kind)
    response = web.Response(body=body, headers={"Cache-Control": "no-store"})
    response.headers["Content-Type"] = CONTENT_TYPE_LATEST
    return response
