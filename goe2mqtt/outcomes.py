"""A command's way to its result: what is queued, and the results it can end with.

Pure: the charger runs commands, the bridge journals and publishes what happens to
them; both speak these types.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Protocol

import structlog

from goe2mqtt.catalogue import UNCONFIRMABLE
from goe2mqtt.commands import SetCall, command_result, request_id_of
from goe2mqtt.goe import JsonValue

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

    seq: int
    charger: str
    service: str
    payload: bytes
    retained: bool
    received: float  # unix time the bridge got it


class CommandSink(Protocol):
    """Where a charger reports its commands' progress (the journal and the result topic)."""

    def command_started(self, command: QueuedCommand, calls: Sequence[SetCall]) -> None: ...

    def command_finished(self, command: QueuedCommand, result: dict[str, Any]) -> None: ...


def unconfirmed_values(
    expected: Mapping[str, JsonValue], status: Mapping[str, Any]
) -> dict[str, dict[str, Any]]:
    """The keys whose status value is not what we set yet (keys the charger does not
    report, such as rst, cannot be confirmed and are not looked for)."""
    return {
        key: {"expected": value, "actual": status.get(key)}
        for key, value in expected.items()
        if key not in UNCONFIRMABLE and not _same(status.get(key), value)
    }


def _same(actual: Any, expected: JsonValue) -> bool:
    if isinstance(actual, bool) != isinstance(expected, bool):
        return False
    if isinstance(actual, float) or isinstance(expected, float):
        # The charger keeps some settings as float32: 123.4 comes back 123.40000153.
        if not isinstance(actual, int | float) or not isinstance(expected, int | float):
            return False
        return abs(actual - expected) <= max(1e-3, abs(expected) * 1e-6)
    return bool(actual == expected)


REPEAT_QUIET = 60.0  # s: the same refusal again within this is logged at debug


class RepeatFilter:
    """Tells news from repeats: a misconfigured sender refused every second must not
    flood the log (its results still go out, each one)."""

    def __init__(self, quiet: float = REPEAT_QUIET, clock: Callable[[], float] = time.monotonic):
        self._quiet = quiet
        self._clock = clock
        self._seen: dict[tuple[str, ...], float] = {}

    def first(self, *what: str) -> bool:
        now = self._clock()
        last = self._seen.get(what)
        if last is not None and now - last < self._quiet:
            return False
        self._seen[what] = now
        if len(self._seen) > 256:  # reasons quote values: keep the memory bounded
            self._seen = dict(list(self._seen.items())[-128:])
        return True


def rejection(command: QueuedCommand, reason: str, *, loud: bool = True) -> dict[str, Any]:
    """A refused command's result; `loud=False` logs it at debug (a repeat of the same
    refusal, e.g. a misconfigured PV feed sending every second)."""
    (log.warning if loud else log.debug)(
        "command_rejected", charger=command.charger, service=command.service, reason=reason
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
