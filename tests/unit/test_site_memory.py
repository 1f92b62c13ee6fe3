"""A site's settings set by command, remembered in state_dir: applied at start while the
config still says what they overrode, dropped when the config changed."""

from __future__ import annotations

import json
import stat
from pathlib import Path
from typing import Any

import pytest
import structlog.testing

from goe2mqtt.bridge.site_memory import SiteMemory, site_memory_path
from goe2mqtt.config.site import SiteChargerSettings, SiteSettings
from goe2mqtt.site.controller import SiteController


def house(*, chargers: tuple[str, ...] = ("garage", "carport"), **over: Any) -> SiteSettings:
    """Site house; the garage has priority 1, the carport 2."""
    priorities = {"garage": 1, "carport": 2}
    return SiteSettings(
        **{"name": "house", "fuse": 25, "meter_topic": "home/meter", **over},
        chargers=tuple(SiteChargerSettings(name=n, priority=priorities[n]) for n in chargers),
    )


def started(path: Path, site: SiteSettings) -> SiteController:
    """A controller as the bridge starts it: the config, then what was remembered."""
    controller = SiteController(site)
    SiteMemory(path).restore(site, controller)
    return controller


def test_commands_survive_a_restart_in_a_private_file(tmp_path: Path) -> None:
    path = site_memory_path(str(tmp_path / "state"), "goe2mqtt-1")
    assert path == tmp_path / "state" / "goe2mqtt-1.sites.json"
    memory = SiteMemory(path)
    site = house()
    memory.learn(site, "set_mode", {"mode": "pv"})
    memory.learn(site, "set_fuse", {"fuse": 20})
    memory.learn(site, "set_priority", {"charger": "carport", "priority": 1})
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert not path.with_name(path.name + ".tmp").exists()
    kept = json.loads(path.read_text())["sites"]["house"]
    assert kept["mode"] == {"value": "pv", "config": "fuse"}  # with what it overrode
    with structlog.testing.capture_logs() as logs:
        controller = started(path, site)
    assert (controller.mode, controller.fuse) == ("pv", 20)
    restored = {e["setting"]: e["value"] for e in logs if e["event"] == "site_setting_restored"}
    assert restored == {
        "mode": "pv",
        "fuse": 20,
        "priority": {"carport": {"value": 1, "config": 2}},
    }
    assert controller.managed["carport"].priority == 1


def test_a_changed_config_value_wins_and_the_memory_of_it_is_dropped(tmp_path: Path) -> None:
    path = tmp_path / "sites.json"
    memory = SiteMemory(path)
    memory.learn(house(), "set_mode", {"mode": "pv"})
    memory.learn(house(), "set_fuse", {"fuse": 20})
    edited = house(mode="off", chargers=("garage",))
    with structlog.testing.capture_logs() as logs:
        controller = started(path, edited)
    assert (controller.mode, controller.fuse) == ("off", 20)  # the fuse's config unchanged
    dropped = [e for e in logs if e["event"] == "site_setting_dropped"]
    assert [e["setting"] for e in dropped] == ["mode"]
    assert "the config changed from 'fuse' to 'off'" in dropped[0]["reason"]
    # Dropped for good: the config going back to fuse does not bring pv back.
    assert started(path, house()).mode == "fuse"


def test_setting_the_configs_own_value_forgets_the_override(tmp_path: Path) -> None:
    path = tmp_path / "sites.json"
    memory = SiteMemory(path)
    memory.learn(house(), "set_mode", {"mode": "pv"})
    memory.learn(house(), "set_mode", {"mode": "fuse"})
    memory.learn(house(), "set_priority", {"charger": "garage", "priority": 1})
    assert json.loads(path.read_text()) == {"sites": {}}


def test_removed_sites_and_chargers_are_forgotten(tmp_path: Path) -> None:
    path = tmp_path / "sites.json"
    memory = SiteMemory(path)
    memory.learn(house(), "set_priority", {"charger": "carport", "priority": 1})
    memory.learn(house(name="barn"), "set_mode", {"mode": "off"})
    SiteMemory(path).keep_only(["house"])
    assert set(json.loads(path.read_text())["sites"]) == {"house"}
    controller = started(path, house(chargers=("garage",)))
    assert controller.managed["garage"].priority == 1
    assert json.loads(path.read_text()) == {"sites": {}}


def test_an_unreadable_or_unwritable_file_costs_the_memory_not_the_bridge(
    tmp_path: Path,
) -> None:
    path = tmp_path / "sites.json"
    path.write_text("{not json")
    with structlog.testing.capture_logs() as logs:
        assert started(path, house()).mode == "fuse"
    assert [e["event"] for e in logs] == ["site_memory_unreadable"]
    path.write_text(
        json.dumps({"sites": {"house": {"mode": "pv", "fuse": {"value": "x", "config": 25}}}})
    )
    controller = started(path, house())
    assert (controller.mode, controller.fuse) == ("fuse", 25)
    blocked = tmp_path / "file"
    blocked.write_text("")
    memory = SiteMemory(blocked / "sites.json")  # a folder that cannot be made
    with structlog.testing.capture_logs() as logs:
        memory.learn(house(), "set_mode", {"mode": "pv"})
        memory.learn(house(), "set_mode", {"mode": "off"})
    assert [e["event"] for e in logs] == ["site_memory_not_saved"]  # said once


def test_a_charger_the_site_paused_is_resumed_by_the_next_process(tmp_path: Path) -> None:
    """Found by the review of issue 31: a restarted bridge took a charger the site had
    paused for a car that does not charge, and never resumed it."""
    from goe2mqtt.site.meter import MeterReading
    from goe2mqtt.site.seen import ChargerSeen

    def charging(amps: float) -> ChargerSeen:
        return ChargerSeen(online=True, car=2, currents=(amps,) * 3, limit=int(amps), frc=0)

    paused_car = ChargerSeen(online=True, car=4, frc=1)  # plugged, forced off: "complete"
    path = tmp_path / "sites.json"
    site = house(resume_after=1)
    first = started(path, site)
    first.see("garage", charging(10))
    first.see("carport", charging(10))
    first.meter(MeterReading(currents=(38.0, 38.0, 38.0)), 0)  # 18 A of house per phase
    writes = {w.charger: w.call for w in first.decide(0).writes}
    assert writes["carport"] == {"frc": 1}
    memory = SiteMemory(path)
    memory.remember_paused("house", first.paused())
    assert json.loads(path.read_text())["sites"]["house"]["paused"] == {"carport": 0}

    # The next process: the house is quiet again, the carport still forced off.
    with structlog.testing.capture_logs() as logs:
        second = started(path, site)
    assert {"event": "site_pause_restored", "site": "house", "chargers": ["carport"],
            "log_level": "info"} in logs  # fmt: skip
    resumed: dict[str, object] = {}
    for now in range(0, 120, 5):
        second.see("garage", charging(6))
        second.see("carport", paused_car)
        second.meter(MeterReading(currents=(8.0, 8.0, 8.0)), now)
        resumed |= {w.charger: w.call for w in second.decide(now).writes if w.charger == "carport"}
        if resumed:
            break
    assert resumed == {"carport": {"frc": 0}}
    assert not second.managed["carport"].paused
    SiteMemory(path).remember_paused("house", second.paused())
    assert "paused" not in json.loads(path.read_text())["sites"].get("house", {})


def test_a_remembered_pause_of_a_charger_no_longer_in_the_site_is_dropped(tmp_path: Path) -> None:
    path = tmp_path / "sites.json"
    SiteMemory(path).remember_paused("house", {"carport": 0, "garage": 7})
    controller = started(path, house(chargers=("garage",)))
    # The carport left the site: forgotten. 7 is no force state: the pause is kept (else
    # the garage stays stopped for good), to resume to neutral.
    assert controller.paused() == {"garage": 0}
    assert json.loads(path.read_text())["sites"]["house"] == {"paused": {"garage": 0}}


HUGE = "1" + "0" * 400  # a 400-digit integer: JSON parses it, no float holds it


@pytest.mark.parametrize(
    ("key", "text"),
    [
        ("fuse", HUGE), ("fuse", "-5"), ("fuse", "NaN"), ("fuse", "1e400"), ("fuse", '"25"'),
        ("fuse", "2000"), ("fuse", "true"), ("mode", HUGE), ("mode", '"warp"'),
    ],
)  # fmt: skip
def test_a_hand_edited_absurd_value_is_dropped_named_never_a_crash(
    tmp_path: Path, key: str, text: str
) -> None:
    """Found in review: a 400-digit fuse in sites.json crashed start-up (OverflowError
    converting it); NaN, text and a mode of numbers were dropped without a word. The
    config's value holds, the log names the file and the key, the file loses the entry."""
    path = tmp_path / "goe2mqtt.sites.json"
    config = {"fuse": "25", "mode": '"fuse"'}[key]
    path.write_text(
        f'{{"sites": {{"house": {{"{key}": {{"value": {text}, "config": {config}}},'
        f' "priority": {{"carport": {{"value": 1, "config": 2}}}}}}}}}}'
    )
    with structlog.testing.capture_logs() as logs:
        controller = started(path, house())
    assert (controller.mode, controller.fuse) == ("fuse", 25)
    assert controller.managed["carport"].priority == 1  # the sound setting beside it stays
    dropped = [e for e in logs if e["event"] == "site_setting_dropped"]
    assert len(dropped) == 1
    assert dropped[0]["file"] == str(path)
    assert dropped[0]["key"] == f"sites.house.{key}"
    assert len(dropped[0]["value"]) <= 40
    assert json.loads(path.read_text())["sites"]["house"] == {
        "priority": {"carport": {"value": 1, "config": 2}}
    }


@pytest.mark.parametrize("text", [HUGE, '"x"', "1.5", "true", "NaN", "-1"])
def test_a_hand_edited_priority_or_pause_is_dropped_named(tmp_path: Path, text: str) -> None:
    path = tmp_path / "goe2mqtt.sites.json"
    path.write_text(
        f'{{"sites": {{"house": {{"priority": {{"carport": {{"value": {text}, "config": 2}}}},'
        f' "paused": {{"garage": {text}}}}}}}}}'
    )
    with structlog.testing.capture_logs() as logs:
        controller = started(path, house())
    assert controller.managed["carport"].priority == 2
    assert controller.paused() == {"garage": 0}  # never forgotten: resumed to neutral
    keys = {e["key"] for e in logs if e["event"] == "site_setting_dropped"}
    assert keys == {"sites.house.priority.carport", "sites.house.paused.garage"}
    assert json.loads(path.read_text())["sites"] == {"house": {"paused": {"garage": 0}}}


def test_a_truncated_file_is_said_and_the_config_holds(tmp_path: Path) -> None:
    path = tmp_path / "goe2mqtt.sites.json"
    whole = json.dumps({"sites": {"house": {"fuse": {"value": 20, "config": 25}}}})
    path.write_text(whole[: len(whole) // 2])
    with structlog.testing.capture_logs() as logs:
        controller = started(path, house())
    assert controller.fuse == 25
    unreadable = [e for e in logs if e["event"] == "site_memory_unreadable"]
    assert [e["file"] for e in unreadable] == [str(path)]
