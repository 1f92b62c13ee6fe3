"""Pure decisions of the charger loop: when a poll is due, who answered."""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Any

from goe2mqtt.goe.transport import GoeError

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


def check_serial(status: Mapping[str, Any], serial: str | None, *, configured: bool) -> None:
    """Another charger answering at this address (a DHCP change on the LAN, a wrong
    api_url, a peer pretending) must not be published under this one's ids, nor take
    its commands: WrongCharger when ``status`` names a serial other than ``serial``
    (``configured``, or learnt earlier). Any message: a full status, a delta, a poll."""
    answered = status.get("sse")
    if serial is None or answered is None or answered == serial:
        return
    expected = "configured" if configured else "learnt earlier"
    shown = serial_from_status(status)  # a peer's text is not repeated: 6 digits only
    said = f"as serial {shown}" if shown else "with a serial that is not 6 digits"
    raise WrongCharger(f"answers {said}, {expected} {serial}")
