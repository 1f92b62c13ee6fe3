"""A site's mode, fuse and priorities set by command, kept in state_dir across restarts.

{state_dir}/{client_id}.sites.json, beside what the chargers told (remembered.py). Each
setting is kept with the config value it overrode: at start it is applied only while
the config still says that value; a config changed since (the user edited the file)
wins, and the remembered setting is dropped. A command that sets the config's own
value forgets the setting (nothing is overridden any more).

One small JSON file (util/state_file.py): replaced atomically, readable by the bridge's
user only; a file that cannot be read or written costs the memory, never the bridge.
"""

from __future__ import annotations

from collections.abc import Iterable
from pathlib import Path
from typing import TYPE_CHECKING, Any

import structlog

from goe2mqtt.config.settings import Settings
from goe2mqtt.config.site import SiteSettings
from goe2mqtt.util.numbers import finite_number
from goe2mqtt.util.state_file import JsonStateFile

if TYPE_CHECKING:  # the site code is imported only when a site is configured
    from goe2mqtt.site.controller import SiteController

log = structlog.get_logger()

Entry = dict[str, Any]  # {"value": what the command set, "config": what it overrode}


def site_memory_path(state_dir: str, client_id: str) -> Path:
    """{state_dir}/{client_id}.sites.json: the sites' settings set by command."""
    return Path(state_dir) / f"{client_id}.sites.json"


def site_memory(settings: Settings) -> SiteMemory:
    """The installation's memory of its sites' settings (read now, if there is one)."""
    return SiteMemory(site_memory_path(settings.state_dir, settings.mqtt.client_id))


def _number(value: object) -> float | None:
    """A number a float holds (the file is hand-editable: 10**400 does not convert,
    NaN compares with nothing), else None."""
    number = finite_number(value)
    return None if number is None else float(number)


def _shown(value: object) -> str:
    """A value from the file for the log: its start (a hand-edited one may be huge)."""
    text = repr(value)
    return text if len(text) <= 40 else text[:37] + "..."


class SiteMemory:
    def __init__(self, path: Path) -> None:
        self._file = JsonStateFile(path, "sites", event="site_memory")
        self._sites: dict[str, dict[str, Any]] = self._file.load()

    def restore(self, site: SiteSettings, controller: SiteController) -> None:
        """Apply what was set by command over the config's values, where the config
        still says what the setting overrode; drop the rest."""
        known = self._sites.get(site.name, {})
        kept: dict[str, Any] = {}
        mode = self._still_overriding(site.name, "mode", known.get("mode"), site.mode)
        if mode is not None:
            value = mode["value"]
            error = controller.set_mode(value) if isinstance(value, str) else "not text"
            if error is None:
                kept["mode"] = mode
            else:
                self._refused(site.name, "mode", value, error, f"the config's mode {site.mode}")
        fuse = self._still_overriding(site.name, "fuse", known.get("fuse"), site.fuse)
        if fuse is not None:
            number = _number(fuse["value"])
            error = "not a finite number" if number is None else controller.set_fuse(number)
            if error is None:
                kept["fuse"] = fuse
            else:
                holds = "no fuse" if site.fuse is None else f"{site.fuse:g} A"
                self._refused(site.name, "fuse", fuse["value"], error,
                              f"the config's fuse ({holds})")  # fmt: skip
        priorities = known.get("priority")
        configured = {c.name: c.priority for c in site.chargers}
        kept_priorities: dict[str, Entry] = {}
        for charger, remembered in priorities.items() if isinstance(priorities, dict) else ():
            if charger not in configured:
                continue  # no longer in the site
            entry = self._still_overriding(site.name, f"priority of {charger}", remembered,
                                           configured[charger])  # fmt: skip
            if entry is not None:
                value = entry["value"]
                if isinstance(value, bool) or not isinstance(value, int):
                    error = "not an integer"
                else:
                    error = controller.set_priority(charger, value)
                if error is None:
                    kept_priorities[charger] = entry
                else:
                    self._refused(site.name, f"priority.{charger}", value, error,
                                  f"the config's priority {configured[charger]}")  # fmt: skip
        if kept_priorities:
            kept["priority"] = kept_priorities
        paused = known.get("paused")
        kept_paused = {}
        for charger, frc in paused.items() if isinstance(paused, dict) else ():
            if isinstance(frc, int) and not isinstance(frc, bool) \
                    and controller.restore_paused(charger, frc):  # fmt: skip
                kept_paused[charger] = frc
            elif charger in configured and controller.restore_paused(charger, 0):
                # What the pause wrote back cannot be read: the pause is not forgotten
                # (the charger would stay stopped for good), it resumes to neutral, the
                # force state a pause takes when it finds none.
                kept_paused[charger] = 0
                self._refused(site.name, f"paused.{charger}", frc,
                              "not a force state to resume with (0 or 2)",
                              "the pause, resumed with frc 0 (neutral),")  # fmt: skip
        if kept_paused:
            kept["paused"] = kept_paused
        for setting, entry in kept.items():
            if setting == "paused":
                log.info("site_pause_restored", site=site.name, chargers=sorted(entry))
                continue
            log.info("site_setting_restored", site=site.name, setting=setting,
                     value=entry if setting == "priority" else entry["value"])  # fmt: skip
        if kept != known:
            self._put(site.name, kept)

    def _refused(self, site: str, key: str, value: object, error: str, holds: str) -> None:
        """A remembered value the file holds that cannot be applied (hand-edited,
        truncated): dropped, and said with the file and the key, never a crash."""
        log.warning(
            "site_setting_dropped", site=site, file=str(self._file.path),
            key=f"sites.{site}.{key}", value=_shown(value), reason=error,
            effect=f"{holds} holds",
        )  # fmt: skip

    def remember_paused(self, site: str, paused: dict[str, int]) -> None:
        """The chargers the site has paused now (their force state before): a restarted
        bridge resumes them; otherwise they would stay paused for good."""
        known = self._sites.get(site, {})
        if known.get("paused", {}) == paused:
            return
        updated = {k: v for k, v in known.items() if k != "paused"}
        if paused:
            updated["paused"] = dict(paused)
        self._put(site, updated)

    def save_owed(self) -> None:
        """Write again what a failed write left only in memory (a full state_dir since
        healed): otherwise a setting learnt then is lost at the next restart, unless
        something else happens to change first."""
        if self._file.owed:
            self._save()

    def keep_only(self, sites: Iterable[str]) -> None:
        """Forget the sites no longer configured."""
        wanted = set(sites)
        if not set(self._sites) <= wanted:
            self._sites = {k: v for k, v in self._sites.items() if k in wanted}
            self._save()

    def learn(self, site: SiteSettings, service: str, arguments: dict[str, Any]) -> None:
        """A site command that succeeded: remember it with the config value it overrides."""
        known = dict(self._sites.get(site.name, {}))
        if service == "set_mode":
            _set(known, "mode", arguments["mode"], site.mode)
        elif service == "set_fuse":
            _set(known, "fuse", float(arguments["fuse"]), site.fuse)
        elif service == "set_priority":
            charger, priority = arguments["charger"], arguments["priority"]
            configured = next(c.priority for c in site.chargers if c.name == charger)
            priorities = dict(known.get("priority") or {})
            _set(priorities, charger, priority, configured)
            known.pop("priority", None)
            if priorities:
                known["priority"] = priorities
        if known != self._sites.get(site.name, {}):
            self._put(site.name, known)

    def _still_overriding(self, site: str, setting: str, entry: object,
                          config: object) -> Entry | None:  # fmt: skip
        """The remembered setting while the config still says what it overrode."""
        if entry is None:
            return None
        if not (isinstance(entry, dict) and "value" in entry and "config" in entry):
            log.warning("site_setting_dropped", site=site, setting=setting,
                        file=str(self._file.path), value=_shown(entry),
                        reason="unreadable in the memory file")  # fmt: skip
            return None
        if entry["config"] != config:
            log.info("site_setting_dropped", site=site, setting=setting,
                     remembered=_shown(entry["value"]), config=config,
                     reason=f"the config changed from {_shown(entry['config'])} to {config!r}:"
                            " the config wins")  # fmt: skip
            return None
        return entry

    def _put(self, site: str, settings: dict[str, Any]) -> None:
        if settings:
            self._sites[site] = settings
        else:
            self._sites.pop(site, None)
        self._save()

    def _save(self) -> None:
        self._file.save(self._sites)


def _set(settings: dict[str, Any], key: str, value: object, config: object) -> None:
    if value == config:
        settings.pop(key, None)  # back to the config's own value: nothing to remember
    else:
        settings[key] = {"value": value, "config": config}
