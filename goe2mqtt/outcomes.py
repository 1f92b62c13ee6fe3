"""A command's way to its result: what is queued, and the results it can end with.

Pure: the charger runs commands, the bridge journals and publishes what happens to
them; both speak these types.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Protocol

import structlog

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
    """The keys whose status value is not what we set yet."""
    return {
        key: {"expected": value, "actual": status.get(key)}
        for key, value in expected.items()
        if status.get(key) != value or isinstance(status.get(key), bool) != isinstance(value, bool)
    }


def rejection(command: QueuedCommand, reason: str) -> dict[str, Any]:
    log.warning(
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
