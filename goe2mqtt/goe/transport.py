"""The seam every way of reaching a charger plugs into.

The charger loop and the command runner ask a Transport for the charger's values and
send it writes; they do not know how these travel. Today's one implementation is the
HTTP API v2 (GoeClient: the cloud, or the charger's local API), read by polling; the
charger's websocket and its own MQTT plug in here too, as further Transports.

Every failure is a GoeError whose message is safe to log; a TransientError is worth
one more try, and the runner never resends an action (rst) after one.
"""

from __future__ import annotations

from collections.abc import Collection, Mapping
from typing import Any, Protocol

from goe2mqtt.util.values import JsonValue


class Transport(Protocol):
    async def status(self, keys: Collection[str]) -> dict[str, Any]:
        """The charger's current values for ``keys`` (every key when empty)."""
        ...

    async def set(self, values: Mapping[str, JsonValue]) -> dict[str, Any]:
        """Write ``values``; the charger's answer per key. The answer is not the proof:
        the caller confirms a write by the status that follows it."""
        ...
