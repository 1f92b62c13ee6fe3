"""/metrics: the families, by prometheus-client, from the bridge's state.

Nothing is counted per poll for it: a scrape reads what the bridge holds anyway
(custom collectors). exposition() writes the whole text in one go: the reference;
web.scrape serves the same text, made in slices and from what it kept.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from typing import Literal

from prometheus_client import generate_latest
from prometheus_client.core import (
    CounterMetricFamily,
    GaugeMetricFamily,
    HistogramMetricFamily,
    Metric,
)
from prometheus_client.process_collector import ProcessCollector

from goe2mqtt.catalogue import CAR_STATES
from goe2mqtt.web.streams import StreamSlots
from goe2mqtt.web.view import BridgeLook, ChargerRow, DurationCounts

JOULES_PER_KWH = 3_600_000.0
PROCESS = ProcessCollector(registry=None)  # RSS, CPU, open fds: not registered globally


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


def take_snapshot(look: BridgeLook, charger_metrics: str, with_rows: bool = True) -> Snapshot:
    durations = look.command_durations()
    return Snapshot(
        version=look.version,
        mqtt_connected=look.mqtt_connected,
        mqtt_disconnects=dict(look.mqtt_disconnects),
        journal_ok=look.journal_error is None,
        results_pending=look.results_pending,
        loop_lag=look.loop_lag,
        rows=list(look.rows()) if with_rows and charger_metrics != "none" else [],
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


def stream_families(streams: StreamSlots) -> Iterable[Metric]:
    """The status page's live streams (/events): open, the limit, refused."""
    yield GaugeMetricFamily(
        "goe2mqtt_http_streams", "live streams (open status pages) now", value=streams.open
    )
    yield GaugeMetricFamily(
        "goe2mqtt_http_streams_limit", "the most live streams at once (http.max_streams)",
        value=streams.limit,
    )  # fmt: skip
    yield CounterMetricFamily(
        "goe2mqtt_http_streams_refused",
        "live streams refused with 503 because http.max_streams were open",
        value=streams.refused,
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


Samples = tuple[tuple[tuple[str, ...], float], ...]  # (label values, value) per sample


@dataclass(frozen=True)
class ChargerFamily:
    """A family with a sample or a few per charger; its samples for one charger come
    from that charger's row alone (web.scrape keeps them until they change)."""

    name: str
    documentation: str
    labels: tuple[str, ...]
    samples: Callable[[ChargerRow, float], Samples]  # (row, now) -> its samples
    health: bool = False  # shown with charger_metrics: health too (else with all only)
    counter: bool = False
    changes_every_scrape: bool = False  # not worth keeping between scrapes

    def family(self) -> CounterMetricFamily | GaugeMetricFamily:
        kind = CounterMetricFamily if self.counter else GaugeMetricFamily
        return kind(self.name, self.documentation, labels=list(self.labels))


def _one(row: ChargerRow, value: float | None) -> Samples:
    return () if value is None else (((row.name,), value),)


def _age(row: ChargerRow, now: float) -> Samples:
    return () if row.last_update is None else (((row.name,), max(0.0, now - row.last_update)),)


def _energy(row: ChargerRow, now: float) -> Samples:
    kwh = row.energy_total_kwh
    return () if kwh is None else (((row.name,), kwh * JOULES_PER_KWH),)


def _currents(row: ChargerRow, now: float) -> Samples:
    name = row.name
    return tuple(((name, phase), amperes)
                 for phase, amperes in zip(PHASES, row.currents, strict=True)
                 if amperes is not None)  # fmt: skip


PHASES = ("1", "2", "3")
CAR_STATE_NAMES = ", ".join(f"{code} {name}" for code, name in CAR_STATES.items())
CHARGER = ("charger",)
CHARGER_FAMILIES = (  # (name, HELP, labels, samples); in charger_metrics: health too, or all only
    ChargerFamily("goe2mqtt_charger_online", "1 while the charger answers", CHARGER,
                  lambda row, now: (((row.name,), row.online),), health=True),
    ChargerFamily(
        "goe2mqtt_charger_info",
        "the charger's model, firmware and transport (polling, websocket, cloud_websocket,"
        " mqtt, none); value 1", ("charger", "model", "firmware", "transport"),
        lambda row, now: (((row.name, row.model or "", row.firmware or "", row.transport), 1),),
        health=True,
    ),
    ChargerFamily("goe2mqtt_charger_last_update_age_seconds",
                  "seconds since the charger was last heard from (absent: never)", CHARGER,
                  _age, health=True, changes_every_scrape=True),
    ChargerFamily(
        "goe2mqtt_charger_polls", "polls by outcome (ok, failed, rate_limited; pushed: messages"
        " a pushing charger sent)", ("charger", "outcome"),
        lambda row, now: tuple(((row.name, outcome), count)
                               for outcome, count in sorted(row.polls.items())),
        health=True, counter=True,
    ),
    ChargerFamily("goe2mqtt_charger_reconnects",
                  "times the charger came back online after going offline", CHARGER,
                  lambda row, now: (((row.name,), row.reconnects),), health=True, counter=True),
    ChargerFamily("goe2mqtt_charger_power_watts", "charging power", CHARGER,
                  lambda row, now: _one(row, row.power_watts)),
    ChargerFamily("goe2mqtt_charger_energy_joules", "energy the charger delivered over its life",
                  CHARGER, _energy, counter=True),
    ChargerFamily("goe2mqtt_charger_current_amperes", "current per phase", ("charger", "phase"),
                  _currents),
    ChargerFamily("goe2mqtt_charger_temperature_celsius", "the charger's temperature", CHARGER,
                  lambda row, now: _one(row, row.temperature)),
    ChargerFamily("goe2mqtt_charger_car_state", f"go-e car state: {CAR_STATE_NAMES}", CHARGER,
                  lambda row, now: _one(row, row.car_state)),
)  # fmt: skip


def charger_families_for(kind: Literal["all", "health", "none"] | str) -> list[ChargerFamily]:
    if kind == "none":
        return []
    return [f for f in CHARGER_FAMILIES if f.health or kind == "all"]


def charger_families(
    snap: Snapshot, kind: Literal["all", "health", "none"] | str
) -> Iterable[Metric]:
    for spec in charger_families_for(kind):
        family = spec.family()
        for row in snap.rows:
            for labels, value in spec.samples(row, snap.now):
                family.add_metric(labels, value)
        yield family


class _Families:
    """A collector over families made already (what generate_latest reads)."""

    def __init__(self, snap: Snapshot, charger_metrics: str) -> None:
        self._snap = snap
        self._kind = charger_metrics

    def collect(self) -> Iterable[Metric]:
        yield from bridge_families(self._snap)
        yield from command_families(self._snap, per_charger=self._kind != "none")
        yield from charger_families(self._snap, self._kind)
        yield from PROCESS.collect()


def exposition(snap: Snapshot, charger_metrics: str) -> bytes:
    return generate_latest(_Families(snap, charger_metrics))
