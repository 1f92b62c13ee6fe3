"""What a pushing charger sent, as kept: bounded, whatever the peer sends.

A charger that pushes (its websocket, its own MQTT) decides what arrives; anyone who
can reach the socket or publish on the broker can pretend to be it. So a transport
keeps only the keys it was told to read (the catalogue's, handed down by the bridge:
this layer does not know the catalogue), each value bounded in size; what it drops is
counted by reason and logged once. Without a list of keys it keeps at most MAX_KEYS.
"""

from __future__ import annotations

import json
from collections.abc import Collection, Mapping
from typing import Any

from goe2mqtt.util.logs import SkipCount

# A value's JSON: a go-e full status is ~10 KiB in all, its largest key ~2 KiB.
MAX_VALUE = 16 * 1024
MAX_KEYS = 512  # without a list of keys: distinct keys kept at most
UNREAD = "a key goe2mqtt does not read"  # a skip's reason


class KeyFilter:
    """Which keys a charger's status may hold; one for the whole fleet."""

    def __init__(self, known: Collection[str] | None = None, *, max_value: int = MAX_VALUE):
        # The filter's own strings: json.loads makes new key strings for every message,
        # and a fleet would otherwise hold one copy of every name per charger.
        self._names: dict[str, str] | None = None if known is None else {k: k for k in known}
        self.max_value = max_value

    @property
    def names(self) -> dict[str, str] | None:
        """Each key that may be kept, to its kept string; None: any key (MAX_KEYS)."""
        return self._names

    def name(self, key: str, held: Collection[str], adding: Collection[str]) -> str | None:
        """The kept name of ``key``, or None when it is not to be kept (``held`` is
        kept already, ``adding`` is being added with it)."""
        if self._names is not None:
            return self._names.get(key)
        if key in held or key in adding or len(held) + len(adding) < MAX_KEYS:
            return key
        return None

    def fits(self, value: Any) -> bool:
        if isinstance(value, str):
            return len(value) <= self.max_value
        if isinstance(value, list | dict):
            try:
                return len(json.dumps(value, separators=(",", ":"))) <= self.max_value
            except (TypeError, ValueError, RecursionError):
                return False
        return True


ANY_KEY = KeyFilter()


class PushedStatus:
    """One charger's last pushed status: a full picture replaced, deltas merged."""

    def __init__(self, keys: KeyFilter, skipped: SkipCount) -> None:
        self._keys = keys
        self._values: dict[str, Any] = {}
        self.skipped = skipped

    def kept(self, values: Mapping[str, Any]) -> dict[str, Any]:
        """What of ``values`` may be kept (not yet kept: see replace/update)."""
        names = self._keys.names
        if names is None:
            return self._kept_any(values)
        # A named fleet's path, once per frame: a charger's deltas are mostly keys the
        # bridge does not read (its clock), counted per frame rather than per key.
        out: dict[str, Any] = {}
        unread = 0
        for key, value in values.items():
            name = names.get(key)  # a JSON key is a string; the names are strings
            if name is None:
                unread += 1
            elif self._keys.fits(value):
                out[name] = value
            else:
                self.skipped.skip(f"a value over {self._keys.max_value // 1024} KiB")
        if unread:
            # A real charger sends hundreds of keys the catalogue does not read.
            self.skipped.skip_routine(UNREAD, unread)
        return out

    def _kept_any(self, values: Mapping[str, Any]) -> dict[str, Any]:
        out: dict[str, Any] = {}
        for key, value in values.items():
            name = self._keys.name(key, self._values, out) if isinstance(key, str) else None
            if name is None:
                self.skipped.skip_routine(UNREAD)
            elif not self._keys.fits(value):
                self.skipped.skip(f"a value over {self._keys.max_value // 1024} KiB")
            else:
                out[name] = value
        return out

    def replace(self, values: Mapping[str, Any]) -> dict[str, Any]:
        """A full status: it replaces what was kept. Returns what was kept."""
        self._values = {}
        self._values = self.kept(values)
        return self._values

    def update(self, values: Mapping[str, Any]) -> dict[str, Any]:
        """A delta: merged into what is kept. Returns the part that was kept."""
        delta = self.kept(values)
        self._values.update(delta)
        return delta

    def keep(self, values: Mapping[str, Any], full: bool) -> dict[str, Any] | None:
        """A pushed message kept: a full picture replaces, a delta merges. What to hand
        on: the part kept, or None for a delta of nothing the bridge reads - it tells
        nothing of the charger, and a read-back must not take it for the charger's word."""
        if full:
            return self.replace(values)
        delta = self.kept(values)
        if not delta:
            return None
        self._values.update(delta)
        return delta

    def read(self, keys: Collection[str] = ()) -> dict[str, Any]:
        values = self._values
        return dict(values) if not keys else {k: values[k] for k in keys if k in values}

    def __len__(self) -> int:
        return len(self._values)

    def __bool__(self) -> bool:
        return bool(self._values)
