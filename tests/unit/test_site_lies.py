"""Chargers and users that contradict themselves or the site: what the site promises
still holds (the limits written within the fuse)."""

from __future__ import annotations

import pytest

from goe2mqtt.config.site import SiteChargerSettings
from goe2mqtt.site.seen import ChargerSeen
from tests.unit.test_site_controller import charging, site, step

FUSE = 25.0


@pytest.mark.parametrize("car", [4, 3, None])
def test_a_charger_that_draws_whatever_its_car_state_says_is_not_room(car: int | None) -> None:
    # The carport's nrg shows 16 A on every phase while its car state says complete,
    # waiting or nothing (a status whose keys disagree: a push's deltas apart, a firmware's
    # lag). Its draw was subtracted from the meter as a site charger's, yet it claimed
    # nothing: its 16 A were room, and the garage went up to 21 A beside them - 39 A a
    # phase on a 25 A fuse, for as long as the carport drew.
    controller = site(chargers=(SiteChargerSettings(name="garage", priority=1),
                                SiteChargerSettings(name="carport", priority=2)))  # fmt: skip
    limits = {"garage": 6, "carport": 16}
    worst = 0.0
    for now in range(0, 200, 5):
        # Each follows what it is written (at once); the carport's car state goes on lying.
        carport = ChargerSeen(online=True, car=car, currents=(limits["carport"],) * 3,
                              limit=limits["carport"])  # fmt: skip
        garage = charging(limits["garage"], limit=limits["garage"])
        for write in step(controller, now, (2, 2, 2), garage=garage, carport=carport):
            if write.call.get("tcl") is not None:
                limits[write.charger] = write.call["tcl"] or 0
            elif write.call.get("frc") == 1:
                limits[write.charger] = 0
        worst = max(worst, 2 + limits["garage"] + limits["carport"])
    assert worst <= FUSE, f"{worst} A on a phase of a {FUSE:g} A fuse"
