"""Pure decisions of the charger loop: when a poll is due, who answered."""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Any

from goe2mqtt.goe.client import GoeError

SERIAL_RE = re.compile(r"[0-9]{6}")


def next_due(due: float, delay: float, now: float) -> float:
    """When the poll after the one due at `due` is due: `delay` later, or, when that
    has passed already (an answer slower than the interval), `delay` from now - never
    polls in a hurry to catch up."""
    return due + delay if due + delay > now else now + delay


class WrongCharger(GoeError):
    """The charger that answered is not the one configured (its serial differs)."""

    offline_now = True


def serial_from_status(status: Mapping[str, Any]) -> str | None:
    serial = status.get("sse")
    return serial if isinstance(serial, str) and SERIAL_RE.fullmatch(serial) else None
