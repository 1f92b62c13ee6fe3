"""What the bridge learnt about its chargers, kept in state_dir across restarts.

A local charger configured without a serial tells it at the first answer; remembered,
it is checked from the first answer of every later run, so another charger that takes
over the address (a DHCP change on the LAN) is never published under this one's ids.
One small JSON file, replaced atomically; a file that cannot be read or written costs
the memory, never the bridge.
"""

from __future__ import annotations

import json
import os
from pathlib import Path

import structlog

log = structlog.get_logger()


class Remembered:
    def __init__(self, path: Path) -> None:
        self.path = path
        self._serials: dict[str, str] = {}
        self._write_failed = False
        try:
            loaded = json.loads(path.read_text(encoding="utf-8"))
        except FileNotFoundError:
            return
        except (OSError, ValueError, RecursionError) as exc:
            log.warning("remembered_unreadable", file=str(path), reason=str(exc))
            return
        serials = loaded.get("serials") if isinstance(loaded, dict) else None
        if isinstance(serials, dict):
            self._serials = {
                k: v for k, v in serials.items() if isinstance(k, str) and isinstance(v, str)
            }

    def serial(self, charger: str) -> str | None:
        return self._serials.get(charger)

    def learn_serial(self, charger: str, serial: str) -> None:
        if self._serials.get(charger) != serial:
            self._serials[charger] = serial
            self._save()

    def _save(self) -> None:
        temporary = self.path.with_name(self.path.name + ".tmp")
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            temporary.write_text(json.dumps({"serials": self._serials}), encoding="utf-8")
            os.replace(temporary, self.path)
        except OSError as exc:
            if not self._write_failed:
                log.warning("remembered_not_saved", file=str(self.path), reason=str(exc))
            self._write_failed = True
            return
        self._write_failed = False
