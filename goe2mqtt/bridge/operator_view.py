"""The bridge as the operator's surface reads it (web.view.BridgeLook), read-only.

Everything is read when a request comes, from what the bridge, its chargers and
its desk hold anyway; nothing here is counted per poll, and nothing holds a secret.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Mapping, Sequence
from typing import Any

from goe2mqtt import __version__
from goe2mqtt.bridge.desk import CommandDesk
from goe2mqtt.bridge.loop_watch import LoopWatch
from goe2mqtt.catalogue.readers import car_code
from goe2mqtt.charger.loop import Charger
from goe2mqtt.commands.outcomes import outcome_of
from goe2mqtt.mqtt.session import MqttSession
from goe2mqtt.web.view import ChargerRow, CommandLine, DurationCounts, state_of, transport_of


def _number(value: Any) -> float | None:
    if isinstance(value, bool) or not isinstance(value, int | float):
        return None
    return float(value)


def cause_word(cause: str) -> str:
    """ "lost: the connection ended under us" -> "lost": a label value, not a sentence."""
    head = cause.split(":", 1)[0].strip().split(" ", 1)[0].lower()
    return head or "other"


def charger_row(charger: Charger) -> ChargerRow:
    view = charger.view
    states = view.states
    facts = view.facts
    error = states.get("error")
    shown_error = "" if error in (None, "none") else str(error)
    up = charger.availability
    if not shown_error and up.failures and charger.last_error is not None:
        shown_error = charger.last_error[1]
    return ChargerRow(
        name=charger.name,
        online=up.online,
        offline_reason="" if up.online else up.offline_reason,
        connection=charger.connection,
        model=facts.model if facts is not None else None,
        firmware=facts.sw_version if facts is not None else None,
        own_name=str(states.get("name") or ""),
        last_update=up.last_success,
        car_state=car_code(charger.status),
        power_watts=_number(states.get("charging_power")),
        currents=(
            _number(states.get("current_l1")),
            _number(states.get("current_l2")),
            _number(states.get("current_l3")),
        ),
        energy_total_kwh=_number(states.get("energy_total")),
        # The ledger's, as Home Assistant's Session energy: not the charger's wh.
        session_kwh=_number(states.get("session_energy")),
        temperature=_number(states.get("temperature")),
        error=shown_error,
        queued=charger.queued,
        polls={**up.polls, **({"pushed": charger.pushed} if charger.pushed else {})},
        reconnects=max(0, up.came_online - 1),
    )


class OperatorView:
    """web.view.BridgeLook over the bridge's parts."""

    def __init__(
        self,
        chargers: Mapping[str, Charger],
        mqtt: MqttSession,
        loop_watch: LoopWatch,
        desk: Callable[[], CommandDesk | None],
        failing: Callable[[], list[str]],
        started: float,
    ) -> None:
        self._chargers = chargers
        self._mqtt = mqtt
        self._loop_watch = loop_watch
        self._desk = desk  # opens with the journal, after the server started
        self._failing = failing
        self._started = started

    @property
    def version(self) -> str:
        return __version__

    @property
    def started(self) -> float:
        return self._started

    @property
    def mqtt_connected(self) -> bool:
        return self._mqtt.connected

    @property
    def mqtt_unanswered(self) -> float:
        return self._mqtt.unanswered

    @property
    def mqtt_keepalive(self) -> float:
        return float(self._mqtt.options.keepalive)

    @property
    def mqtt_disconnects(self) -> Mapping[str, int]:
        words: dict[str, int] = {}
        for cause, count in self._mqtt.disconnects.items():
            word = cause_word(cause)
            words[word] = words.get(word, 0) + count
        return words

    @property
    def journal_error(self) -> str | None:
        desk = self._desk()
        return "not open yet" if desk is None else desk.journal_error

    @property
    def results_pending(self) -> int:
        desk = self._desk()
        return 0 if desk is None else desk.results.pending

    @property
    def loop_lag(self) -> float:
        return self._loop_watch.lag_lately

    def failing(self) -> list[str]:
        return self._failing()

    def names(self) -> Sequence[str]:
        return list(self._chargers)

    def row(self, name: str) -> ChargerRow | None:
        charger = self._chargers.get(name)
        return None if charger is None else charger_row(charger)

    def rows(self) -> Iterator[ChargerRow]:
        for charger in list(self._chargers.values()):
            yield charger_row(charger)

    def kinds(self) -> Iterator[tuple[str, str, str]]:
        for name, charger in list(self._chargers.items()):
            yield (
                name,
                state_of(charger.availability.online, car_code(charger.status)),
                transport_of(charger.connection),
            )

    def states(self, name: str) -> Mapping[str, Any]:
        charger = self._chargers.get(name)
        return {} if charger is None else dict(charger.view.states)

    def history(self, name: str, limit: int) -> list[CommandLine]:
        desk = self._desk()
        if desk is None or name not in self._chargers:
            return []
        lines = []
        for entry in desk.journal.latest(name, limit):
            result = entry.result or {}
            lines.append(
                CommandLine(
                    received=entry.received,
                    service=entry.service,
                    state=entry.state,
                    outcome=outcome_of(result) if entry.result is not None else "",
                    error=str(result.get("error") or ""),
                )
            )
        return lines

    def command_outcomes(self) -> Mapping[tuple[str, str, str], int]:
        desk = self._desk()
        return {} if desk is None else desk.outcomes

    def command_durations(self) -> DurationCounts:
        desk = self._desk()
        if desk is None:
            return DurationCounts((), {}, {})
        durations = desk.durations
        return DurationCounts(durations.buckets, durations.counts, durations.sums)
