"""Where everything of one installation lives under its base topic.

Pure. ONLINE/OFFLINE are the availability payloads, here once for every layer.
"""

from __future__ import annotations

from dataclasses import dataclass

from goe2mqtt.catalogue import STATE_ENTITIES

ONLINE = "online"
OFFLINE = "offline"
RESULT_LEAF = "result"
SESSION_LEAF = "session"  # {base}/{name}/session: the ledger's open (or last) session
BRIDGE_LEAF = "bridge"  # {base}/bridge/...: the bridge's topics (no charger has this name)


@dataclass(frozen=True)
class Topics:
    """Where everything of one installation lives under the base topic."""

    base: str
    # With shards every instance has its own bridge topics: one instance's last will
    # must not make the chargers of the others unavailable.
    shard: int | None = None

    @property
    def bridge(self) -> str:
        suffix = "" if self.shard is None else f"/shard-{self.shard}"
        return f"{self.base}/{BRIDGE_LEAF}{suffix}"

    @property
    def bridge_availability(self) -> str:
        return f"{self.bridge}/availability"

    @property
    def bridge_info(self) -> str:
        return f"{self.bridge}/info"

    @property
    def command_filter(self) -> str:
        return f"{self.base}/+/cmd/+"

    def state(self, charger: str, key: str) -> str:
        return f"{self.base}/{charger}/{key}"

    def json_state(self, charger: str) -> str:
        return f"{self.base}/{charger}/state"

    def session(self, charger: str) -> str:
        return f"{self.base}/{charger}/{SESSION_LEAF}"

    def session_ended(self, charger: str) -> str:
        return f"{self.base}/{charger}/{SESSION_LEAF}/ended"

    def availability(self, charger: str) -> str:
        return f"{self.base}/{charger}/availability"

    def command(self, charger: str, service: str) -> str:
        return f"{self.base}/{charger}/cmd/{service}"

    def result(self, charger: str) -> str:
        return f"{self.base}/{charger}/cmd/{RESULT_LEAF}"

    @property
    def availability_filter(self) -> str:
        return f"{self.base}/+/availability"

    def charger_of_availability(self, topic: str) -> str | None:
        """The charger whose availability topic this is, or None for anything else."""
        prefix, suffix = f"{self.base}/", "/availability"
        if not (topic.startswith(prefix) and topic.endswith(suffix)):
            return None
        name = topic[len(prefix) : -len(suffix)]
        return None if name in ("", BRIDGE_LEAF) or "/" in name else name

    def charger_retained(self, charger: str) -> list[str]:
        """Every retained topic the bridge may have published for one charger."""
        return [
            self.availability(charger),
            self.json_state(charger),
            self.session(charger),
            *(self.state(charger, entity.key) for entity in STATE_ENTITIES),
        ]

    def parse_command(self, topic: str) -> tuple[str, str] | None:
        """(charger, service) of a command topic, or None for anything else."""
        prefix = f"{self.base}/"
        if not topic.startswith(prefix):
            return None
        parts = topic[len(prefix) :].split("/")
        if len(parts) != 3 or parts[1] != "cmd" or not parts[0] or not parts[2]:
            return None
        return parts[0], parts[2]
