"""The site's own commands (set_mode, set_fuse, set_priority) and which chargers'
commands it refuses while it manages their current.

Pure. A user's command that sets the current of a charger in a site whose mode is not
``off`` is refused with the reason: the site would overwrite it within a decision, and
a command that reports success and is undone seconds later is worse than a refusal.
For the same reason a command that would start a charger the site has paused is refused
(bridge/site_runner.py: it reads the command as the command path does).
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

from goe2mqtt.util.numbers import finite_number
from goe2mqtt.util.values import echoable_id

SITE_SERVICES = ("set_mode", "set_fuse", "set_priority")
# The chargers' services that set the charging current (amp) or its temporary limit.
CURRENT_SERVICES = frozenset({"change_charging_power", "temporary_current_limit"})
CURRENT_KEYS = frozenset({"amp", "tcl"})

MAX_SITE_PAYLOAD = 1024


class SiteCommandError(ValueError):
    """A site command that cannot run; the text is its result's error."""


@dataclass(frozen=True)
class SiteCommand:
    service: str
    arguments: dict[str, Any]
    request_id: str | int | float | None


def parse_site_command(service: str, payload: bytes) -> SiteCommand:
    if service not in SITE_SERVICES:
        raise SiteCommandError(f"unknown site service {service[:40]!r}: {', '.join(SITE_SERVICES)}")
    if len(payload) > MAX_SITE_PAYLOAD:
        raise SiteCommandError(f"payload of {len(payload)} bytes is too large")
    try:
        value = json.loads(payload)
    except (ValueError, RecursionError):
        raise SiteCommandError("payload must be a JSON object") from None
    if not isinstance(value, dict):
        raise SiteCommandError("payload must be a JSON object")
    request_id = value.pop("id", None)
    if not echoable_id(request_id):  # as a charger command's: its result echoes it
        raise SiteCommandError("id must be a string or a number within ±2**53")
    expected = {"set_mode": {"mode"}, "set_fuse": {"fuse"},
                "set_priority": {"charger", "priority"}}[service]  # fmt: skip
    if set(value) != expected:
        raise SiteCommandError(f"{service} takes {{{', '.join(sorted(expected))}}}")
    if service == "set_mode" and not isinstance(value["mode"], str):
        raise SiteCommandError("mode must be fuse, pv or off")
    if service == "set_fuse" and finite_number(value["fuse"]) is None:
        raise SiteCommandError("fuse must be a number (A)")
    if service == "set_priority":
        priority = value["priority"]
        if not isinstance(value["charger"], str):
            raise SiteCommandError("charger must be a charger's name")
        if finite_number(priority) is None or not float(priority).is_integer():
            raise SiteCommandError("priority must be a whole number")
        value["priority"] = int(priority)
    return SiteCommand(service, value, request_id)


def sets_current(service: str, payload: bytes) -> bool:
    """Whether a charger command sets the current the site manages."""
    if service in CURRENT_SERVICES:
        return True
    if service not in ("set", "start_charging"):
        return False
    try:
        value = json.loads(payload)
    except (ValueError, RecursionError):
        return False  # the command path refuses it for what it is
    if service == "start_charging":
        # Its one parameter may come bare (`10`, as the README shows): that is a current.
        if isinstance(value, dict):
            return value.get("charging_power") is not None
        return value is not None
    if not isinstance(value, dict):
        return False
    return not CURRENT_KEYS.isdisjoint(value)
