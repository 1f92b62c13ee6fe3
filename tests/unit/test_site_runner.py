"""The site on the bridge's side, without a broker: what it hands the command desk, what
it publishes and when, what it logs (the README's promises about them)."""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
import structlog.testing

from goe2mqtt.bridge.site_memory import SiteMemory
from goe2mqtt.bridge.site_runner import STATE_REFRESH, SiteRunner
from goe2mqtt.commands.journal import QUEUED, Journal
from goe2mqtt.config.site import SiteChargerSettings, SiteSettings
from goe2mqtt.mqtt.session import InboundMessage


@dataclass
class Availability:
    online: bool = True


@dataclass
class FakeCharger:
    status: dict[str, Any]
    availability: Availability = field(default_factory=Availability)


class Desk:
    def __init__(self) -> None:
        self.accepted: list[tuple[str, str, InboundMessage]] = []

    def accept(self, charger: str, service: str, message: InboundMessage) -> None:
        self.accepted.append((charger, service, message))

    def calls(self) -> list[tuple[str, dict[str, Any]]]:
        return [(c, json.loads(m.payload)) for c, _, m in self.accepted]


class Broker:
    def __init__(self) -> None:
        self.retained: list[tuple[str, dict[str, Any]]] = []

    async def publish_retained(self, topic: str, payload: str | bytes) -> None:
        self.retained.append((topic, json.loads(payload)))

    async def publish_once(self, topic: str, payload: str | bytes) -> None:
        raise AssertionError("no site command in these tests")


class Clock:
    now = 1000.0

    def __call__(self) -> float:
        return self.now


def charging(amps: float, **more: Any) -> dict[str, Any]:
    return {"car": 2, "frc": 0, "psm": 0, "mca": 6, "ama": 32, "amp": 16, "tcl": None,
            "nrg": [230, 230, 230, 0, amps, amps, amps, 0, 0, 0, 0, 0], **more}  # fmt: skip


def runner(clock: Clock) -> SiteRunner:
    settings = SiteSettings(name="house", fuse=25, meter_topic="home/meter", interval=5,
                            chargers=(SiteChargerSettings(name="garage"),))  # fmt: skip
    return SiteRunner(settings, base="goe", clock=clock)


def meter(site: SiteRunner, amps: float) -> None:
    site.meter_message(json.dumps({"l1": amps, "l2": amps, "l3": amps}).encode())


async def test_the_state_goes_out_when_it_changes_and_at_least_once_a_minute() -> None:
    clock, desk, broker = Clock(), Desk(), Broker()
    site = runner(clock)
    # 2 A of house and the garage at 16 A, its own maximum: nothing to change.
    chargers = {"garage": FakeCharger(charging(16, tcl=16, ama=16))}
    meter(site, 18)
    await site.decide(chargers, desk, broker)  # type: ignore[arg-type]
    assert [t for t, _ in broker.retained] == ["goe/site/house/state"]
    for _ in range(5):  # nothing changes: nothing published, the meter's age aside
        clock.now += 10
        meter(site, 18)
        await site.decide(chargers, desk, broker)  # type: ignore[arg-type]
    assert len(broker.retained) == 1
    clock.now += STATE_REFRESH - 50 + 1
    meter(site, 18)
    await site.decide(chargers, desk, broker)  # type: ignore[arg-type]
    assert len(broker.retained) == 2
    assert broker.retained[-1][1]["meter"]["age"] == 0.0


async def test_writes_go_to_the_desk_as_the_sites_commands_and_are_logged() -> None:
    clock, desk, broker = Clock(), Desk(), Broker()
    site = runner(clock)
    # No tcl in its status (older firmware): the site writes amp.
    old = dict(charging(16))
    del old["tcl"]
    chargers = {"garage": FakeCharger(old)}
    with structlog.testing.capture_logs() as logs:
        meter(site, 30)  # 14 A besides the garage: 10.5 A of room
        await site.decide(chargers, desk, broker)  # type: ignore[arg-type]
    assert desk.calls() == [("garage", {"amp": 10, "id": "site:house:1"})]
    _, service, message = desk.accepted[0]
    # It lowers the garage's 16 A: on the lowerings' topic, journaled so (run after a restart).
    assert (service, message.topic, message.retain) == ("set", "goe/site/house/write/lower", False)
    [said] = [e for e in logs if e["event"] == "site_write"]
    assert (said["charger"], said["call"]) == ("garage", {"amp": 10})
    chargers["garage"].status = {
        **old,
        "amp": 10,  # it follows
        "nrg": [230, 230, 230, 0, 10, 10, 10, 0, 0, 0, 0, 0],
    }
    meter(site, 24)
    # The meter falls silent: the fallback, said once, and its end.
    with structlog.testing.capture_logs() as logs:
        for _ in range(8):
            clock.now += 5
            await site.decide(chargers, desk, broker)  # type: ignore[arg-type]
        meter(site, 20)  # readings return
        clock.now += 5
        await site.decide(chargers, desk, broker)  # type: ignore[arg-type]
    events = [e["event"] for e in logs if e["event"].startswith("site_fallback")]
    assert events == ["site_fallback", "site_fallback_ended"]
    assert ("garage", {"amp": 6, "id": "site:house:2"}) in desk.calls()
    # Mode off on a charger without tcl: nothing to clear (no tcl write it cannot take).
    site.controller.set_mode("off")
    before = len(desk.accepted)
    await site.decide(chargers, desk, broker)  # type: ignore[arg-type]
    assert all("tcl" not in call for _, call in desk.calls()[before:])


async def test_a_setting_changed_by_command_is_in_the_next_state_even_in_mode_off() -> None:
    """Found by Home Assistant: in mode off a fuse set changes no charger's share, and the
    state said the old fuse until the minute's refresh."""
    clock, desk, broker = Clock(), Desk(), Broker()
    site = runner(clock)
    chargers = {"garage": FakeCharger(charging(16, tcl=16, ama=16))}
    meter(site, 18)
    await site.decide(chargers, desk, broker)  # type: ignore[arg-type]
    results: list[tuple[str, str | bytes]] = []

    class Results(Broker):
        async def publish_once(self, topic: str, payload: str | bytes) -> None:
            results.append((topic, payload))

    for service, payload in (("set_mode", {"mode": "off"}), ("set_fuse", {"fuse": 20})):
        await site.command(service, json.dumps(payload).encode(), Results())  # type: ignore[arg-type]
        clock.now += 1
        meter(site, 18)
        await site.decide(chargers, desk, broker)  # type: ignore[arg-type]
    assert [json.loads(p)["ok"] for _, p in results] == [True, True]
    state = broker.retained[-1][1]
    assert (state["mode"], state["fuse"]) == ("off", 20)


async def test_a_site_command_whose_id_no_utf8_holds_is_refused_and_answered() -> None:
    """A hostile client's {"mode": "pv", "id": "\\ud800"}: a charger command with that id
    is refused, the site's set the mode (and remembered it) and echoed the surrogate."""
    site = runner(Clock())
    results: list[bytes] = []

    class Results(Broker):
        async def publish_once(self, topic: str, payload: str | bytes) -> None:
            results.append(payload.encode() if isinstance(payload, str) else payload)

    await site.command("set_mode", b'{"mode": "pv", "id": "\\ud800"}', Results())  # type: ignore[arg-type]
    assert site.controller.mode == "fuse"
    (result,) = [json.loads(r) for r in results]
    assert result["ok"] is False
    assert "id" not in result
    assert result["error"].startswith("id must be a string or a number")


async def test_a_retained_meter_reading_is_old_and_not_taken_for_a_measurement() -> None:
    """At a subscribe the broker hands over what it kept, of unknown age: the site waits
    for a live reading, and without one falls back as with no reading at all."""
    from goe2mqtt.bridge.sites import Sites

    clock, desk, broker = Clock(), Desk(), Broker()
    sites = Sites([runner(clock).settings], base="goe")
    site = sites.runners["house"]
    site._clock = clock
    chargers = {"garage": FakeCharger(charging(16, tcl=16))}
    kept = json.dumps({"l1": 2, "l2": 2, "l3": 2}).encode()
    with structlog.testing.capture_logs() as logs:
        sites.message(InboundMessage(topic="home/meter", payload=kept, retain=True), broker)
        sites.message(InboundMessage(topic="home/meter", payload=kept, retain=True), broker)
    assert [e["event"] for e in logs] == ["site_meter_retained"]  # said once
    assert site.controller.reading is None
    await site.decide(chargers, desk, broker)  # type: ignore[arg-type]
    assert desk.accepted == []  # waiting for a reading, as at a start without one
    clock.now += site.settings.meter_timeout
    await site.decide(chargers, desk, broker)  # type: ignore[arg-type]
    state = broker.retained[-1][1]
    assert state["fallback"] is True
    assert state["fallback_reason"].startswith("no meter reading")
    # A live reading (a retained publish reaches a subscriber without the flag).
    sites.message(InboundMessage(topic="home/meter", payload=kept, retain=False), broker)
    clock.now += 1
    await site.decide(chargers, desk, broker)  # type: ignore[arg-type]
    assert broker.retained[-1][1]["fallback"] is False
    assert broker.retained[-1][1]["meter"]["reading"] == {"l1": 2, "l2": 2, "l3": 2}


async def test_a_setting_the_disk_refused_is_saved_once_it_takes_writes_again(
    tmp_path: Path,
) -> None:
    """Found by breaking it: set_fuse on a full state_dir answered ok, the file could not
    be written, and nothing wrote it later: the disk healed, but a restart (days later)
    still lost the setting the README says survives one."""
    blocked = tmp_path / "state"
    blocked.write_text("")  # a file where the folder should be: every write fails
    path = blocked / "sites.json"
    clock, desk = Clock(), Desk()
    settings = SiteSettings(name="house", fuse=25, meter_topic="home/meter", interval=5,
                            chargers=(SiteChargerSettings(name="garage"),))  # fmt: skip
    site = SiteRunner(settings, base="goe", clock=clock, memory=SiteMemory(path))
    chargers = {"garage": FakeCharger(charging(16, tcl=16, ama=16))}
    results: list[bytes] = []

    class Results(Broker):
        async def publish_once(self, topic: str, payload: str | bytes) -> None:
            results.append(payload.encode() if isinstance(payload, str) else payload)

    with structlog.testing.capture_logs() as logs:
        await site.command("set_fuse", b'{"fuse": 20}', Results())  # type: ignore[arg-type]
        assert json.loads(results[0])["ok"] is True
        blocked.unlink()  # the disk takes writes again; nothing else changes
        for _ in range(3):
            clock.now += settings.interval
            meter(site, 2)  # nothing else to remember: no pause
            await site.decide(chargers, desk, Broker())  # type: ignore[arg-type]
    remembered = json.loads(path.read_text())["sites"]["house"]["fuse"]
    assert remembered == {"value": 20.0, "config": 25.0}
    assert [e["event"] for e in logs if "memory" in e["event"]] == ["site_memory_not_saved"]
    controller = SiteRunner(settings, base="goe", memory=SiteMemory(path)).controller
    assert controller.fuse == 20  # what a restart now finds


async def test_a_flaky_meter_is_logged_once_per_reason_not_once_per_bad_reading() -> None:
    """Found by breaking it: a meter sending a bad reading between good ones logged
    site_meter_invalid at every bad one (the README: once per reason), and a
    site_fallback and its end with each."""
    clock, desk, broker = Clock(), Desk(), Broker()
    site = runner(clock)
    chargers = {"garage": FakeCharger(charging(16, tcl=16))}
    with structlog.testing.capture_logs() as logs:
        for _ in range(10):
            meter(site, 5)
            await site.decide(chargers, desk, broker)  # type: ignore[arg-type]
            site.meter_message(b'{"l1": NaN, "l2": 1, "l3": 1}')
            site.meter_message(b'{"l1": 1, "l2": 1}')
            await site.decide(chargers, desk, broker)  # type: ignore[arg-type]
            clock.now += 2
        assert site.controller.invalid == "l3 missing: give the current of every phase"
        clock.now += 3600  # an hour on: said again, in case nobody looked
        site.meter_message(b'{"l1": NaN, "l2": 1, "l3": 1}')
    said = [e["reason"] for e in logs if e["event"] == "site_meter_invalid"]
    assert said == ["l1: nan is not a finite number",
                    "l3 missing: give the current of every phase",
                    "l1: nan is not a finite number"]  # fmt: skip
    loud = [e["event"] for e in logs if e["event"].startswith("site_fallback")
            and e["log_level"] != "debug"]  # fmt: skip
    assert loud == ["site_fallback", "site_fallback_ended"]  # the first of ten only


class Killed(BaseException):
    """kill -9: nothing after this point of the process runs."""


class DyingDesk:
    """The desk's first step (the write journaled, committed), then the process dies,
    before the site could write {client_id}.sites.json."""

    def __init__(self, journal: Journal) -> None:
        self.journal = journal

    def accept(self, charger: str, service: str, message: InboundMessage) -> None:
        self.journal.record(charger, service, message.payload, retained=False, received=0.0)
        raise Killed


async def test_a_kill_between_the_pause_journaled_and_the_sites_file_leaves_the_pause_known(
    tmp_path: Path,
) -> None:
    """Found in review: the pause's frc=1 was journaled (and so run: at restart the desk
    runs what the journal holds queued) before sites.json listed the pause. A kill -9
    between the two left the charger paused by a site that did not know it: never
    resumed. The pause is now on disk first, and the restarted site resumes it."""
    path, journal_path = tmp_path / "goe2mqtt.sites.json", tmp_path / "goe2mqtt.journal"
    settings = SiteSettings(name="house", fuse=25, meter_topic="home/meter", interval=5,
                            chargers=(SiteChargerSettings(name="garage"),))  # fmt: skip
    clock, journal = Clock(), Journal(journal_path)
    site = SiteRunner(settings, base="goe", clock=clock, memory=SiteMemory(path))
    meter(site, 40)  # 24 A of house beside the garage's 16: no room for its minimum
    with pytest.raises(Killed):
        await site.decide({"garage": FakeCharger(charging(16))}, DyingDesk(journal), Broker())  # type: ignore[arg-type]
    journal.close()
    # The restart: the journal still holds the pause, queued (the desk runs it).
    journal = Journal(journal_path)
    queued = [(e.charger, json.loads(e.payload)) for e in journal.entries(QUEUED)]
    assert queued == [("garage", {"frc": 1, "id": "site:house:1"})]
    journal.close()
    clock.now += 60
    restarted = SiteRunner(settings, base="goe", clock=clock, memory=SiteMemory(path))
    assert restarted.controller.paused() == {"garage": 0}  # paused by the site, frc 0 before
    # The pause ran; the house's load falls: the site resumes it as its own pause.
    chargers = {"garage": FakeCharger(charging(0, car=3, frc=1))}
    desk = Desk()
    for _ in range(20):
        clock.now += settings.interval
        meter(restarted, 8)
        await restarted.decide(chargers, desk, Broker())  # type: ignore[arg-type]
        if desk.accepted:
            break
    assert ("garage", {"frc": 0}) in [(c, {k: v for k, v in call.items() if k == "frc"})
                                      for c, call in desk.calls() if "frc" in call]  # fmt: skip
    assert json.loads(path.read_text())["sites"] == {}  # resumed: the pause forgotten on disk


async def test_a_kill_between_the_resume_journaled_and_the_sites_file_keeps_the_fuse_safe(
    tmp_path: Path,
) -> None:
    """The reverse window: the resume's first write journaled, sites.json still lists
    the pause. The restart knows the charger as paused; should the resume have reached
    it (the charger charges), the site pauses it again at once - it never charges on a
    room nobody measured since the restart."""
    path, journal_path = tmp_path / "goe2mqtt.sites.json", tmp_path / "goe2mqtt.journal"
    settings = SiteSettings(name="house", fuse=25, meter_topic="home/meter", interval=5,
                            chargers=(SiteChargerSettings(name="garage"),))  # fmt: skip
    clock, journal = Clock(), Journal(journal_path)
    site = SiteRunner(settings, base="goe", clock=clock, memory=SiteMemory(path))
    meter(site, 40)
    await site.decide({"garage": FakeCharger(charging(16))}, Desk(), Broker())  # type: ignore[arg-type]
    assert json.loads(path.read_text())["sites"]["house"]["paused"] == {"garage": 0}
    paused = {"garage": FakeCharger(charging(0, car=3, frc=1))}
    killed = False
    for _ in range(40):  # room returns; the resume's first write kills the process
        clock.now += settings.interval
        meter(site, 8)
        try:
            await site.decide(paused, DyingDesk(journal), Broker())  # type: ignore[arg-type]
        except Killed:
            killed = True
            break
    assert killed
    [entry] = journal.entries(QUEUED)
    assert json.loads(entry.payload) == {"tcl": 6, "id": "site:house:2"}
    journal.close()
    assert json.loads(path.read_text())["sites"]["house"]["paused"] == {"garage": 0}
    restarted = SiteRunner(settings, base="goe", clock=clock, memory=SiteMemory(path))
    assert restarted.controller.paused() == {"garage": 0}
    # The resume reached the charger before the kill: it charges, unasked for.
    clock.now += settings.interval
    meter(restarted, 14)
    desk = Desk()
    await restarted.decide({"garage": FakeCharger(charging(6))}, desk, Broker())  # type: ignore[arg-type]
    assert desk.calls() == [("garage", {"frc": 1, "id": "site:house:1"})]
