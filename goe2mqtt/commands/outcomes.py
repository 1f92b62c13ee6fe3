"""A command's way to its result: what is queued, and the results it can end with.

Pure: the charger runs commands, the bridge journals and publishes what happens to
them; both speak these types.
"""

from __future__ import annotations

import asyncio
import dataclasses
import math
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Protocol

import structlog

from goe2mqtt.catalogue import UNCONFIRMABLE
from goe2mqtt.commands.payloads import SetCall, command_result, request_id_of
from goe2mqtt.util.numbers import finite_number, is_number
from goe2mqtt.util.values import JsonValue

log = structlog.get_logger()

NOT_CONFIRMED = "not confirmed"
OUTCOME_UNKNOWN = "outcome unknown"


@dataclass
class CommandStats:
    ok: int = 0
    rejected: int = 0  # invalid input: never reached the charger
    failed: int = 0  # the charger refused, did not answer or did not confirm


@dataclass(frozen=True)
class QueuedCommand:
    """A command as delivered, before anything is known about it."""

    seq: int | None  # its journal row; None when the journal could not store it
    charger: str
    service: str
    payload: bytes
    retained: bool
    received: float  # unix time the bridge got it (journaled, shown)
    # When it was received on the monotonic clock: the bridge's own measure of its age,
    # which a wall-clock jump (NTP, a VM resumed) cannot make stale or "future".
    received_at: float = dataclasses.field(default_factory=time.monotonic)
    # It may run without a journal row when the journal cannot store one: a site's
    # write, a setpoint the site writes again anyway, which must not wait for a disk
    # (a full one would leave the fuse unprotected). Never set for a user's command.
    unjournaled_ok: bool = False
    # A site's write (the fuse's protection): it runs before the users' commands that
    # wait, in its own order, and a queue they filled does not refuse it.
    first: bool = False


class JournalWait(Exception):
    """The journal cannot mark a command running now (a full disk): nothing is sent,
    and the command waits for ``writable``, still queued in the journal.

    Not refused: its sender would be told "not run" while the journal still holds it
    queued, and a kill -9 before the disk healed ran it after the restart - twice at
    the charger for a sender who had sent it again."""

    def __init__(self, reason: str, writable: asyncio.Event) -> None:
        super().__init__(reason)
        self.writable = writable  # set once the journal writes again


class CommandSink(Protocol):
    """Where a charger reports its commands' progress (the journal and the result topic)."""

    @property
    def refusals(self) -> RepeatFilter:
        """Which refusals are news for the log: one filter for the whole bridge."""

    def command_started(self, command: QueuedCommand, calls: Sequence[SetCall]) -> None:
        """Record that the calls go out; CommandError when that can never be recorded
        (the command is then refused, nothing sent), JournalWait when it cannot be now
        (nothing sent: the command waits, still queued)."""

    def command_finished(self, command: QueuedCommand, result: dict[str, Any]) -> None: ...


def unconfirmed_values(
    expected: Mapping[str, JsonValue], status: Mapping[str, Any]
) -> dict[str, dict[str, Any]]:
    """The keys whose status value is not what we set yet (keys the charger does not
    report, such as rst, cannot be confirmed and are not looked for). An actual value
    no float holds (10**400, -2**60: a charger's garbage) is null, as NaN becomes in the
    result's JSON: a JavaScript reader would take it for another number."""
    return {
        key: {"expected": value, "actual": _shown(status.get(key))}
        for key, value in expected.items()
        if key not in UNCONFIRMABLE and not _same(status.get(key), value)
    }


def _shown(actual: Any) -> Any:
    return None if _beyond_float(actual) else actual


def _beyond_float(actual: Any) -> bool:
    """A number no float holds (10**400, -2**60, an infinity): a charger's garbage."""
    return is_number(actual) and finite_number(actual) is None


def _same(actual: Any, expected: JsonValue) -> bool:
    if isinstance(actual, bool) != isinstance(expected, bool):
        return False
    if _beyond_float(actual):
        # No float holds it, so it is not what we set; abs(10**400 - 123.4) below
        # raised OverflowError, and the command's result was "internal error".
        return False
    if isinstance(actual, float) or isinstance(expected, float):
        # The charger keeps some settings as float32: 123.4 comes back 123.40000153.
        if not isinstance(actual, int | float) or not isinstance(expected, int | float):
            return False
        return abs(actual - expected) <= max(1e-3, abs(expected) * 1e-6)
    return bool(actual == expected)


# What a result's error starts with -> its outcome, as metrics count them.
_OUTCOMES = (
    (NOT_CONFIRMED, "not_confirmed"),
    (OUTCOME_UNKNOWN, "unknown"),
    ("stale:", "stale"),
    ("charger offline", "offline"),
    ("rate limited", "rate_limited"),
    ("not run: the journal", "journal_failed"),
)


def outcome_of(result: Mapping[str, Any]) -> str:
    """One word for how a command ended: applied, refused, not_confirmed, unknown,
    stale, offline, rate_limited, journal_failed or failed (the charger said no, or
    did not answer)."""
    if result.get("ok") is True:
        return "applied"
    error = str(result.get("error") or "")
    for start, outcome in _OUTCOMES:
        if error.startswith(start):
            return outcome
    return "failed" if "applied" in result else "refused"


# Seconds from delivery to result: a read-back takes ~5 s, a charger that times out more.
DURATION_BUCKETS = (0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0)


class Durations:
    """How long commands took, per service, counted into fixed buckets: what a
    histogram on /metrics shows, kept as a handful of numbers per service."""

    def __init__(self, buckets: Sequence[float] = DURATION_BUCKETS) -> None:
        self.buckets = tuple(buckets)
        self.counts: dict[str, list[int]] = {}  # service -> count per bucket, then +Inf
        self.sums: dict[str, float] = {}

    def observe(self, service: str, seconds: float) -> None:
        counts = self.counts.setdefault(service, [0] * (len(self.buckets) + 1))
        index = next((i for i, b in enumerate(self.buckets) if seconds <= b), len(self.buckets))
        counts[index] += 1
        self.sums[service] = self.sums.get(service, 0.0) + seconds


REPEAT_QUIET = 60.0  # s: the same charger and service refused again within this: counted


class RepeatFilter:
    """Tells news from repeats: a sender refused again and again (a misconfigured
    automation, a hostile client at full rate) must not flood the log; its results
    still go out, each one. The first refusal of a window is logged with how many
    the window before it held."""

    def __init__(self, quiet: float = REPEAT_QUIET, clock: Callable[[], float] = time.monotonic):
        self._quiet = quiet
        self._clock = clock
        self._seen: dict[tuple[str, ...], tuple[float, int]] = {}  # -> (window start, repeats)

    def first(self, *what: str) -> int | None:
        """None for a repeat inside the window; else the repeats the last window held."""
        now = self._clock()
        started, repeats = self._seen.get(what, (-math.inf, 0))
        if now - started < self._quiet:
            self._seen[what] = (started, repeats + 1)
            return None
        self._seen[what] = (now, 0)
        if len(self._seen) > 1024:  # one entry per charger and service: bounded anyway
            self._seen = dict(list(self._seen.items())[-512:])
        return repeats


class RefusedDeliveries:
    """Deliveries refused before anything was stored, by MQTT packet id, so that a DUP
    redelivery (QoS 1 is "at least once") is recognised and not answered twice, as the
    journal recognises those it holds. Within one broker session only: packet ids start
    afresh with a new one (forget())."""

    # More than a broker keeps in flight to one client (Mosquitto: 20).
    KEPT = 256

    def __init__(self) -> None:
        self._mids: dict[int, int] = {}  # packet id -> hash of (charger, service, payload)

    def refused(self, mid: int | None, charger: str, service: str, payload: bytes) -> None:
        if mid is None:
            return
        self._mids.pop(mid, None)  # to the end: the oldest go first
        self._mids[mid] = hash((charger, service, payload))
        if len(self._mids) > self.KEPT:
            del self._mids[next(iter(self._mids))]

    def again(self, mid: int | None, dup: bool, charger: str, service: str, payload: bytes) -> bool:
        """Whether this delivery is a redelivery of one refused already."""
        if mid is None:
            return False
        if dup:
            return self._mids.get(mid) == hash((charger, service, payload))
        # A packet id the broker uses again was acknowledged: it is a new delivery.
        self._mids.pop(mid, None)
        return False

    def forget(self) -> None:
        self._mids.clear()


def rejection(command: QueuedCommand, reason: str, refusals: RepeatFilter) -> dict[str, Any]:
    """A refused command's result. Refusals of one charger and service are logged once
    a minute (per ``refusals``, the bridge's), with the count of those in between."""
    repeats = refusals.first(command.charger, command.service)
    if repeats is None:
        log.debug(
            "command_rejected", charger=command.charger, service=command.service, reason=reason
        )
    else:
        extra = {"repeats_not_logged": repeats} if repeats else {}
        log.warning(
            "command_rejected",
            charger=command.charger,
            service=command.service,
            reason=reason,
            **extra,
        )
    return command_result(
        command.service, ok=False, request_id=request_id_of(command.payload), error=reason
    )


def interrupted(command: QueuedCommand, sent: Sequence[SetCall] | None) -> dict[str, Any]:
    """The result of a command cut off after it may have reached the charger."""
    return command_result(
        command.service,
        ok=False,
        request_id=request_id_of(command.payload),
        error=f"{OUTCOME_UNKNOWN}: the bridge stopped while the command ran; "
        "check the charger's state before sending it again",
        sent=list(sent or []),
    )
