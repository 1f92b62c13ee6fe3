"""A health file for supervisors: the bridge writes it, `goe2mqtt healthcheck` judges it.

Containers and service managers cannot subscribe to MQTT; a file they can read
without a network is the simplest honest signal.
"""

from __future__ import annotations

import json
import os
import time
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import structlog

log = structlog.get_logger()

DEFAULT_MAX_AGE = 90.0  # three missed refreshes of 30 s
OFFLINE_NAMED = 10  # offline chargers named in the verdict line; the rest counted
AHEAD = 60.0  # s a file's time may be ahead of the clock (file systems round; NTP slews)


def write_health_file(path: Path, health: Mapping[str, Any]) -> None:
    """Replace the file in one step, so a reader never sees half of it."""
    partial = path.with_name(path.name + ".partial")
    try:
        partial.write_text(json.dumps(health, sort_keys=True), encoding="utf-8")
        os.replace(partial, path)
    except OSError as exc:
        log.warning("health_file_failed", path=str(path), error=exc.strerror)


def check_health(
    path: Path, *, max_age: float = DEFAULT_MAX_AGE, now: float | None = None
) -> tuple[bool, str]:
    """(healthy, one line why): fresh and connected to the broker; offline chargers are
    named in the line but leave it healthy."""
    now = time.time() if now is None else now
    try:
        age = now - path.stat().st_mtime
        health = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError) as exc:
        return False, f"no health file at {path}: {exc}"
    if age > max_age:
        return False, f"health file is {age:.0f} s old: the bridge is stuck or gone"
    if age < -AHEAD:
        # The clock stepped back: a stuck bridge's last file passed for fresh until the
        # clock caught up. A live bridge writes it again within its info interval.
        return False, (
            f"health file is dated {-age:.0f} s ahead of this clock: the clock stepped"
            " back, and the bridge has not written it since"
        )
    try:
        return _judged(health)
    except (AttributeError, TypeError, ValueError):  # JSON, but not what the bridge writes
        return False, f"not the bridge's health file: {path}"


def _judged(health: Any) -> tuple[bool, str]:
    if health.get("stopped"):  # its last word at a clean stop
        return False, f"the bridge stopped at {health.get('updated')}"
    if not health.get("mqtt_connected"):
        return False, "not connected to the MQTT broker"
    unanswered, keepalive = health.get("mqtt_unanswered"), health.get("mqtt_keepalive")
    if _number(unanswered) and _number(keepalive) and unanswered > keepalive / 2:
        # /readyz's rule and words: frozen or gone, the connection not ended yet.
        return False, f"the MQTT broker has not answered for {unanswered:.0f} s"
    chargers = health.get("chargers", {})
    # A large fleet's info lists only the chargers that need a look: count from totals.
    total = health.get("chargers_total", len(chargers))
    online = health.get("chargers_online", sum(1 for i in chargers.values() if i.get("online")))
    offline = sorted(name for name, info in chargers.items() if not info.get("online"))
    summary = f"{online}/{total} chargers online"
    if offline:
        more = total - online - len(offline[:OFFLINE_NAMED])
        named = ", ".join(offline[:OFFLINE_NAMED]) + (f" and {more} more" if more > 0 else "")
        summary += f" (offline: {named})"
    # An offline charger is the charger's problem, not the bridge's: still healthy.
    return True, summary


def _number(value: Any) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool)
