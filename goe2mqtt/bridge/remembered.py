"""What the bridge learnt about its chargers, kept in state_dir across restarts.

- A local charger configured without a serial tells it at the first answer; remembered,
  it is checked from the first answer of every later run, so another charger that takes
  over the address (a DHCP change on the LAN) is never published under this one's ids.
- The device facts of the last answer (model, firmware, which keys, ranges): a restart
  while the charger is unreachable announces those, not a bare "go-e Charger" that
  would overwrite what Home Assistant knew.

One small JSON file, replaced atomically; a file that cannot be read or written costs
the memory, never the bridge.
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

import structlog

log = structlog.get_logger()


class Remembered:
    def __init__(self, path: Path) -> None:
        self.path = path
        self._chargers: dict[str, dict[str, Any]] = {}
        self._write_failed = False
        try:
            loaded = json.loads(path.read_text(encoding="utf-8"))
        except FileNotFoundError:
            return
        except (OSError, ValueError, RecursionError) as exc:
            log.warning("remembered_unreadable", file=str(path), reason=str(exc))
            return
        chargers = loaded.get("chargers") if isinstance(loaded, dict) else None
        if isinstance(chargers, dict):
            self._chargers = {
                k: v for k, v in chargers.items() if isinstance(k, str) and isinstance(v, dict)
            }

    def serial(self, charger: str) -> str | None:
        serial = self._chargers.get(charger, {}).get("serial")
        return serial if isinstance(serial, str) else None

    def facts(self, charger: str) -> dict[str, Any] | None:
        facts = self._chargers.get(charger, {}).get("facts")
        return facts if isinstance(facts, dict) else None

    def learn_serial(self, charger: str, serial: str) -> None:
        self._learn(charger, "serial", serial)

    def learn_facts(self, charger: str, facts: dict[str, Any]) -> None:
        self._learn(charger, "facts", facts)

    def _learn(self, charger: str, what: str, value: Any) -> None:
        known = self._chargers.setdefault(charger, {})
        if known.get(what) != value:
            known[what] = value
            self._save()

    def _save(self) -> None:
        temporary = self.path.with_name(self.path.name + ".tmp")
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            temporary.write_text(json.dumps({"chargers": self._chargers}), encoding="utf-8")
            os.replace(temporary, self.path)
        except OSError as exc:
            if not self._write_failed:
                log.warning("remembered_not_saved", file=str(self.path), reason=str(exc))
            self._write_failed = True
            return
        self._write_failed = False
