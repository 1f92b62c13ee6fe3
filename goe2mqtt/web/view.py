"""What the operator's surface reads of the bridge: a narrow, read-only view.

The bridge implements BridgeLook; everything here is read when a request comes, from
state the bridge keeps anyway. Nothing in it holds a secret.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Protocol

from goe2mqtt.catalogue import CAR_STATES


def transport_of(connection: str) -> str:
    """The connection in one word: polling, websocket, cloud_websocket, mqtt, none."""
    return connection.split(" (", 1)[0].strip().replace(" ", "_") or "none"


def state_of(online: bool, car_state: int | None) -> str:
    """online, offline, or the car state's name while online."""
    if not online:
        return "offline"
    return CAR_STATES.get(car_state, "unknown") if car_state is not None else "online"


@dataclass(frozen=True)
class ChargerRow:
    """One charger as the operator sees it at this moment."""

    name: str
    online: bool
    offline_reason: str  # "" while online
    connection: str  # the Connection entity: transport, and why when not the best one
    model: str | None = None
    firmware: str | None = None
    own_name: str = ""  # the name the charger itself was given (fna): the owner's words
    last_update: float | None = None  # unix time it was last heard from
    car_state: int | None = None
    power_watts: float | None = None
    currents: tuple[float | None, float | None, float | None] = (None, None, None)
    energy_total_kwh: float | None = None
    session_kwh: float | None = None
    temperature: float | None = None
    error: str = ""  # what the charger reports as its error, or the last poll failure
    queued: int = 0
    polls: Mapping[str, int] = field(default_factory=dict)  # outcome -> polls
    reconnects: int = 0  # times it came back online after going offline

    @property
    def transport(self) -> str:
        return transport_of(self.connection)

    @property
    def state(self) -> str:
        return state_of(self.online, self.car_state)


@dataclass(frozen=True)
class CommandLine:
    """One command of a charger's history (from the journal)."""

    received: float  # unix time
    service: str
    state: str  # queued, running, done, published
    outcome: str  # applied, refused, ... ("" while it has no result)
    error: str


@dataclass(frozen=True)
class DurationCounts:
    """A histogram as the bridge keeps it: per service, a count per bucket, then +Inf."""

    buckets: Sequence[float]
    counts: Mapping[str, Sequence[int]]
    sums: Mapping[str, float]


class BridgeLook(Protocol):
    """The bridge, read-only, as the HTTP surface needs it."""

    @property
    def version(self) -> str: ...

    @property
    def started(self) -> float:
        """Unix time the bridge started."""

    @property
    def mqtt_connected(self) -> bool: ...

    @property
    def mqtt_unanswered(self) -> float:
        """Seconds the broker has left a request unanswered (0: none waits)."""

    @property
    def mqtt_keepalive(self) -> float: ...

    @property
    def mqtt_disconnects(self) -> Mapping[str, int]:
        """Cause (one word) -> connections lost or failed."""

    @property
    def journal_error(self) -> str | None:
        """Why the journal cannot write now; None while it can."""

    @property
    def results_pending(self) -> int: ...

    @property
    def loop_lag(self) -> float:
        """The longest hold of the event loop lately, in seconds."""

    def failing(self) -> list[str]:
        """Why the bridge would not recover by itself (tasks that ended); [] if none."""

    def names(self) -> Sequence[str]:
        """The chargers, in configuration order."""

    def row(self, name: str) -> ChargerRow | None: ...

    def rows(self) -> Iterable[ChargerRow]: ...

    def kinds(self) -> Iterable[tuple[str, str, str]]:
        """(name, state, transport) of every charger, in configuration order, without
        making its row: what a filter by state or transport looks at."""

    def states(self, name: str) -> Mapping[str, Any]:
        """Every entity's current value (entity key -> value)."""

    def history(self, name: str, limit: int) -> list[CommandLine]:
        """The charger's last commands, newest first."""

    def command_outcomes(self) -> Mapping[tuple[str, str, str], int]:
        """(charger, service, outcome) -> commands so ended."""

    def command_durations(self) -> DurationCounts: ...
