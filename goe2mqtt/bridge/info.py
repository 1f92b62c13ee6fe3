"""What {base}/bridge/info says about the chargers: small at any fleet size.

Building every charger's entry holds the event loop in proportion to the fleet
(docs/scaling.md), and every poll and command waits meanwhile. Up to DETAIL_LIMIT
chargers each has its entry; in a larger fleet only those that need a look (offline,
failing or with commands waiting), at most DETAIL_LIMIT of them, and the counts.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import asdict
from typing import Any, Protocol

from goe2mqtt.charger.availability import Availability
from goe2mqtt.commands.outcomes import CommandStats
from goe2mqtt.util.values import iso

DETAIL_LIMIT = 100


class ChargerHealth(Protocol):
    @property
    def availability(self) -> Availability:
        """Online or not, polls failed in a row."""

    @property
    def last_error(self) -> tuple[float, str] | None:
        """What went wrong last, poll or command: (unix time, what)."""

    @property
    def queued(self) -> int: ...

    @property
    def commands(self) -> CommandStats: ...

    def info(self) -> dict[str, Any]: ...


def needs_look(charger: ChargerHealth) -> bool:
    up = charger.availability
    return not up.online or up.failures > 0 or charger.queued > 0


def fleet_info(chargers: Mapping[str, ChargerHealth], unrouted: CommandStats) -> dict[str, Any]:
    """The chargers' part of bridge/info; `unrouted` counts commands for no charger."""
    totals = CommandStats(**asdict(unrouted))
    errors: list[tuple[tuple[float, str], str]] = []
    online = 0
    for name, charger in chargers.items():
        stats = charger.commands
        totals.ok += stats.ok
        totals.rejected += stats.rejected
        totals.failed += stats.failed
        online += charger.availability.online
        if charger.last_error:
            errors.append((charger.last_error, name))
    last_error = None
    if errors:
        (at, error), name = max(errors)
        last_error = {"at": iso(at), "charger": name, "error": error[:200]}
    if len(chargers) <= DETAIL_LIMIT:
        detail, shown = {name: c.info() for name, c in chargers.items()}, "all"
    else:
        detail, shown = {}, "needing_attention"
        for name, charger in chargers.items():
            if needs_look(charger):
                detail[name] = charger.info()
                if len(detail) >= DETAIL_LIMIT:
                    break
    return {
        "chargers": detail,
        "chargers_shown": shown,
        "chargers_total": len(chargers),
        "chargers_online": online,
        "last_error": last_error,
        "commands": asdict(totals),
    }
