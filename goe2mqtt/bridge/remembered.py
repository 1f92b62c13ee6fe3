"""What the bridge learnt about its chargers, kept in state_dir across restarts.

- A local charger configured without a serial tells it at the first answer; remembered,
  it is checked from the first answer of every later run, so another charger that takes
  over the address (a DHCP change on the LAN) is never published under this one's ids.
- The device facts of the last answer (model, firmware, which keys, ranges): a restart
  while the charger is unreachable announces those, not a bare "go-e Charger" that
  would overwrite what Home Assistant knew.

One small JSON file (util/state_file.py): replaced atomically, readable by the bridge's
user only; a file that cannot be read or written costs the memory, never the bridge.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import structlog

from goe2mqtt.catalogue.facts import DeviceFacts
from goe2mqtt.config.settings import Settings
from goe2mqtt.util.state_file import JsonStateFile

log = structlog.get_logger()


def remembered_path(settings: Settings) -> Path:
    """{state_dir}/{client_id}.chargers.json: what the chargers told about themselves."""
    return Path(settings.state_dir) / f"{settings.mqtt.client_id}.chargers.json"


def remembered_chargers(settings: Settings) -> Remembered:
    """The installation's memory of its chargers (read now, if there is one)."""
    return Remembered(remembered_path(settings))


class Remembered:
    def __init__(self, path: Path) -> None:
        self._file = JsonStateFile(path, "chargers", event="remembered")
        self._chargers: dict[str, dict[str, Any]] = self._file.load()

    def serial(self, charger: str) -> str | None:
        serial = self._chargers.get(charger, {}).get("serial")
        return serial if isinstance(serial, str) else None

    def facts(self, charger: str) -> DeviceFacts | None:
        facts = self._chargers.get(charger, {}).get("facts")
        if facts is None:
            return None
        read = DeviceFacts.from_json(facts) if isinstance(facts, dict) else None
        if read is None:  # hand-edited or damaged: the charger's first answer tells again
            log.warning("remembered_unreadable", file=str(self._file.path),
                        key=f"chargers.{charger}.facts",
                        effect="ignored: the charger's first answer tells its facts")  # fmt: skip
        return read

    def learn_serial(self, charger: str, serial: str) -> None:
        self._learn(charger, "serial", serial)

    def learn_facts(self, charger: str, facts: DeviceFacts) -> None:
        self._learn(charger, "facts", facts.to_json())

    def _learn(self, charger: str, what: str, value: Any) -> None:
        known = self._chargers.setdefault(charger, {})
        if known.get(what) != value:
            known[what] = value
            self._save()

    def save_owed(self) -> None:
        """Write again what a failed write left only in memory (a full state_dir since
        healed): a serial is told once, at the first answer, and would otherwise never
        reach the file, nor be checked after a restart."""
        if self._file.owed:
            self._save()

    def _save(self) -> None:
        self._file.save(self._chargers)
