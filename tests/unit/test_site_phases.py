"""The phases a charger's limit needs room on: every phase it may draw on, not only those
its nrg shows now. A car seen on one phase may be on three the next second, unseen while
the charger is offline (another car plugged in, go-e's own phase switching), and a
faulty nrg may show 0 A on a phase the car draws on."""

from __future__ import annotations

from typing import Any

from goe2mqtt.config.site import SiteChargerSettings, SiteSettings
from goe2mqtt.site.controller import SiteController
from goe2mqtt.site.meter import MeterReading
from goe2mqtt.site.seen import ChargerSeen

FUSE = 25.0


def garage_site(**over: Any) -> SiteController:
    return SiteController(SiteSettings(
        name="house", fuse=FUSE, meter_topic="home/meter", resume_after=0,
        chargers=(SiteChargerSettings(name="garage", max_current=16),), **over,
    ))  # fmt: skip


def decide(controller: SiteController, now: float, house: tuple[float, float, float],
           seen: ChargerSeen, drawn: tuple[float, float, float]) -> dict[str, Any]:  # fmt: skip
    """The meter reads the house and what the car really draws; one decision's set call."""
    controller.see("garage", seen)
    grid = (house[0] + drawn[0], house[1] + drawn[1], house[2] + drawn[2])
    controller.meter(MeterReading(currents=grid), now)
    call: dict[str, Any] = {}
    for write in controller.decide(now).writes:
        call.update(write.call)
    return call


def test_a_one_phase_cars_limit_has_room_on_every_phase_it_may_switch_to() -> None:
    """Before, a car seen on phase 1 got phase 1's room (16 A) beside 15 A of house on
    phase 2: on three phases (a switch, another car plugged in while the charger was
    offline) that is 31 A on phase 2 until the site can write it again."""
    house = (1.0, 15.0, 1.0)
    one = ChargerSeen(online=True, car=2, currents=(16.0, 0.0, 0.0), limit=16, psm=0)
    assert decide(garage_site(), 0, house, one, one.currents) == {"tcl": 9}  # 24.5 - 15
    # Forced to one phase (psm 1) it cannot switch: phase 1's room is its room.
    forced = ChargerSeen(online=True, car=2, currents=(16.0, 0.0, 0.0), limit=16, psm=1)
    assert decide(garage_site(), 0, house, forced, forced.currents) == {"tcl": 16}


def test_a_charger_whose_nrg_hides_phases_it_draws_on_never_takes_them_past_the_fuse() -> None:
    """A faulty nrg shows 0 A on phases 2 and 3 while the car draws its limit on all
    three: what it draws there is the house's to the site. Before, the site counted it
    on phase 1 only and raised it on phase 1's room, 2 A a decision, past phase 2's."""
    controller, limit, frc = garage_site(), 6, 0
    worst = 0.0
    for n in range(60):  # five minutes of decisions; the car follows each write
        house = (1.0 + 0.05 * (n % 3), 12.0, 1.0)  # the meter moves a little
        draw = float(limit) if frc != 1 else 0.0
        shown = ChargerSeen(online=True, car=2, currents=(draw, 0.0, 0.0), limit=limit,
                            psm=0, frc=frc)  # fmt: skip
        call = decide(controller, 5.0 * n, house, shown, (draw, draw, draw))
        limit, frc = call.get("tcl", limit), call.get("frc", frc)
        worst = max(worst, house[1] + (limit if frc != 1 else 0.0))
    assert worst <= FUSE - 0.5, worst


def test_a_charger_forced_onto_phase_2_is_not_paused_for_phase_1s_lack_of_room() -> None:
    """A charger forced to one phase (psm 1) whose car draws on phase 2 (wired so: the
    house's L2 on its L1) needs room on phase 2 alone. Before, a phase with no room
    failed every charger's minimum, drawn there or not: 26 A of house on phase 1 paused
    it, which took nothing off phase 1 and left 17.5 A of phase 2 unused."""
    house = (26.0, 7.0, 1.0)
    forced = ChargerSeen(online=True, car=2, currents=(0.0, 10.0, 0.0), limit=10, psm=1)
    controller = garage_site()
    # Taken over at the 10 A it has; its share is its maximum (17.5 A of room).
    assert decide(controller, 0, house, forced, forced.currents) == {"tcl": 10}
    assert not controller.managed["garage"].paused
    assert controller.managed["garage"].share == 16.0
    assert decide(controller, 5, house, forced, forced.currents) == {"tcl": 12}  # and up
    # Not forced, the same car's limit needs room on every phase: phase 1 has none.
    free = ChargerSeen(online=True, car=2, currents=(0.0, 10.0, 0.0), limit=10, psm=0)
    assert decide(garage_site(), 0, house, free, free.currents) == {"frc": 1}
