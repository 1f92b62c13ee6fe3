"""A small JSON file in state_dir that the bridge keeps across restarts.

One object under one top-level name ({"sites": {...}}, {"chargers": {...}}), read
once at start and replaced atomically on every change, readable by the bridge's user
only. A file that cannot be read or written costs what it remembers, never the
bridge: `{event}_unreadable` is logged when it cannot be read, `{event}_not_saved`
once when a write fails (again only after a write has succeeded since); ``owed`` says
a failed write is still to be made again, for an owner with nothing new to write.
"""

from __future__ import annotations

import json
import os
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import structlog

log = structlog.get_logger()


def _missing(path: Path) -> list[Path]:
    """``path`` and its parents that do not exist, the deepest first."""
    missing = []
    while not path.exists() and path.parent != path:
        missing.append(path)
        path = path.parent
    return missing


def private_dir(path: Path) -> None:
    """Make ``path`` and any missing parent readable by the bridge's user only (a
    directory that exists keeps its mode: its owner chose it). The files in state_dir are
    0600, but their names (client ids, a charger's keys) are no one else's business."""
    for directory in reversed(_missing(path)):
        directory.mkdir(mode=0o700, exist_ok=True)
        os.chmod(directory, 0o700)  # the umask cannot widen it, nor narrow it for us


def unusable_dir(path: Path) -> tuple[str, bool] | None:
    """Why the bridge could not keep its files in ``path``, and whether that is sure
    (False: only this user may not write there, perhaps not the daemon's); None: fine."""
    try:
        missing = _missing(path)
        nearest = missing[-1].parent if missing else path  # where the missing would be made
        if not nearest.is_dir():
            return f"{nearest} is not a directory", True
    except OSError as exc:  # a name longer than the file system takes: exists() raises
        return f"{path}: {exc.strerror or exc}", True
    if not os.access(nearest, os.W_OK | os.X_OK):
        return f"{nearest} is not writable by this user", False
    return None


class JsonStateFile:
    def __init__(self, path: Path, section: str, *, event: str) -> None:
        self.path = path
        self._section = section  # the top-level name the entries are kept under
        self._event = event  # what the log events start with
        self._write_failed = False

    @property
    def owed(self) -> bool:
        """The last write failed: what it held is not on disk (save again to heal)."""
        return self._write_failed

    def load(self) -> dict[str, dict[str, Any]]:
        """The entries that are objects; none if there is no file or it is unreadable."""
        try:
            loaded = json.loads(self.path.read_text(encoding="utf-8"))
        except FileNotFoundError:
            return {}
        except (OSError, ValueError, RecursionError) as exc:
            log.warning(f"{self._event}_unreadable", file=str(self.path), reason=str(exc))
            return {}
        entries = loaded.get(self._section) if isinstance(loaded, dict) else None
        if not isinstance(entries, dict):
            return {}
        return {k: v for k, v in entries.items() if isinstance(v, dict)}

    def save(self, entries: Mapping[str, Any]) -> None:
        """Replace the file with these entries: whole or not at all, mode 0600."""
        temporary = self.path.with_name(self.path.name + ".tmp")
        try:
            private_dir(self.path.parent)
            descriptor = os.open(temporary, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
            with os.fdopen(descriptor, "w", encoding="utf-8") as file:
                os.fchmod(file.fileno(), 0o600)  # also when an older .tmp was left behind
                json.dump({self._section: entries}, file)
                file.flush()
                os.fsync(file.fileno())
            os.replace(temporary, self.path)
        except OSError as exc:
            if not self._write_failed:
                log.warning(f"{self._event}_not_saved", file=str(self.path), reason=str(exc))
            self._write_failed = True
            return
        self._write_failed = False
