"""The session ledger's pure logic: sessions from statuses, energy from eto, flags for
what cannot be right, prices per interval, the PV split, the tariff's checks (the
store and the books: test_ledger_books.py)."""

from __future__ import annotations

import json
import math
from typing import Any

import pytest

from goe2mqtt.config.problems import ConfigError
from goe2mqtt.config.schema import validate
from goe2mqtt.config.settings import parse_settings
from goe2mqtt.config.tariff import TariffSettings
from goe2mqtt.ledger.pricing import TimeOfUse, TopicPrice, parse_price
from goe2mqtt.ledger.readings import read
from goe2mqtt.ledger.record import (
    BRIDGE_GAP,
    CHARGER_RESTARTED,
    COUNTER_JUMP,
    UNPLUGGED,
)
from goe2mqtt.ledger.tracker import Tracker, grid_share

T0 = 1_796_000_000.0  # 2026-11-30T00:53:20Z, a Monday


def status(car: int = 2, eto: Any = 100_000, *, wh: Any = 0.0, power: float = 11_000.0,
           trx: Any = None, rbc: int = 7, **more: Any) -> dict[str, Any]:  # fmt: skip
    nrg = [230, 230, 230, 0, 16, 16, 16, 3680, 3680, 3680, 0, power, 100, 100, 100, 0]
    return {"car": car, "eto": eto, "wh": wh, "nrg": nrg, "pnp": 3, "trx": trx, "rbc": rbc,
            "c0n": "Alice", "c1n": "Bob", **more}  # fmt: skip


class Clock:
    def __init__(self) -> None:
        self.now, self.mono = T0, 1000.0

    def advance(self, seconds: float) -> None:
        self.now += seconds
        self.mono += seconds


def tracker(price: float | None = 0.30) -> Tracker:
    tariff = TariffSettings(price_per_kwh=price) if price is not None else TariffSettings()
    from goe2mqtt.ledger.pricing import pricing_for

    return Tracker("garage", currency="EUR", pricing=pricing_for(tariff, {}))


def feed(t: Tracker, clock: Clock, values: dict[str, Any], grid_w: float | None = None) -> Any:
    return t.observe(read(values), now=clock.now, mono=clock.mono, serial="012345", grid_w=grid_w)


def test_a_session_opens_with_the_car_counts_eto_and_closes_when_it_is_gone() -> None:
    t, clock = tracker(), Clock()
    assert feed(t, clock, status(car=1)).opened == []
    step = feed(t, clock, status(car=3, eto=100_000, trx=None))
    assert [s.charger for s in step.opened] == ["garage"]
    session = step.opened[0]
    for eto in (101_000, 102_000, 103_456):
        clock.advance(600)
        assert feed(t, clock, status(car=2, eto=eto, wh=eto - 100_000, trx=2)).counted
    clock.advance(60)
    step = feed(t, clock, status(car=1, eto=103_456, wh=3456))
    assert step.closed == [session]
    record = session.public()
    assert record["energy_wh"] == 3456
    assert record["charger_wh"] == 3456  # the cross-check agrees
    assert record["cost"] == round(3.456 * 0.30, 2)
    assert record["ended"] == UNPLUGGED
    assert (record["card_slot"], record["card"]) == (1, "Bob")
    assert record["phases"] == 3
    assert record["peak_power_w"] == 11_000
    assert record["duration_s"] == 1860
    assert record["start"].endswith("+00:00")
    assert not record["flagged"]
    assert t.open is None


def test_a_cost_under_half_a_cent_below_zero_is_0_not_minus_0() -> None:
    """Negative prices are real: 5 Wh at -0.05 a kWh is -0.00025, in cents -0.0, which
    JSON keeps: the session/ended record and Home Assistant's cost said -0.0."""
    t, clock = tracker(price=-0.05), Clock()
    feed(t, clock, status(eto=100_000))
    clock.advance(60)
    feed(t, clock, status(eto=100_005, wh=5.0))
    clock.advance(60)
    closed = feed(t, clock, status(car=1, eto=100_005, wh=5.0)).closed[0]
    assert closed.energy_wh == 5
    assert json.dumps(closed.public()["cost"]) == "0.0"


def test_energy_is_eto_end_minus_start_whatever_wh_does() -> None:
    t, clock = tracker(), Clock()
    feed(t, clock, status(eto=500_000, wh=900.0))
    clock.advance(3600)
    feed(t, clock, status(eto=507_000, wh=0.0))  # wh reset (a firmware quirk)
    clock.advance(60)
    closed = feed(t, clock, status(car=1, eto=507_000, wh=0.0)).closed[0]
    assert closed.energy_wh == 7000


@pytest.mark.parametrize(
    ("after", "elapsed", "why"),
    [(90_000, 600, "backwards"), (100_000 + 500_000, 600, "jumped")],
)
def test_a_counter_that_jumps_closes_the_session_flagged_never_absurd(
    after: float, elapsed: float, why: str
) -> None:
    t, clock = tracker(), Clock()
    feed(t, clock, status(eto=100_000))
    clock.advance(60)
    feed(t, clock, status(eto=100_200))
    clock.advance(elapsed)
    step = feed(t, clock, status(eto=after))
    closed = step.closed[0]
    assert closed.end_reason == COUNTER_JUMP
    assert closed.energy_wh == 200  # up to the last good reading
    assert closed.cost is None
    assert why in closed.flags[0]
    # The car is still there: a new session counts from the new reading.
    assert step.opened
    assert step.opened[0].eto_start == after


def test_a_charger_offline_for_hours_keeps_its_session_and_counts_the_energy() -> None:
    t, clock = tracker(), Clock()
    feed(t, clock, status(eto=100_000))
    clock.advance(5 * 3600)  # nothing heard: 5 h later, 40 kWh more
    assert feed(t, clock, status(eto=140_000)).closed == []
    clock.advance(10)
    assert feed(t, clock, status(car=1, eto=140_000)).closed[0].energy_wh == 40_000


@pytest.mark.parametrize(
    "hostile",
    [{"eto": 10**400}, {"eto": math.nan}, {"eto": "lots"}, {"eto": -5}, {"wh": -1},
     {"wh": math.inf}, {"trx": "card"}, {"trx": -3}, {"trx": 10**400}],
)  # fmt: skip
def test_hostile_values_flag_the_session_and_it_is_never_priced(hostile: dict[str, Any]) -> None:
    t, clock = tracker(), Clock()
    feed(t, clock, status(eto=100_000))
    clock.advance(60)
    step = feed(t, clock, status(**{"eto": 100_100, **hostile}))
    assert step.flagged
    assert step.closed == []
    clock.advance(60)
    feed(t, clock, status(eto=100_300))
    closed = feed(t, clock, status(car=1, eto=100_300)).closed[0]
    assert closed.flagged
    assert closed.cost is None
    assert closed.energy_wh == 300  # no absurd energy: only good readings count
    assert all(len(flag) < 120 for flag in closed.flags)


def test_a_charger_restart_closes_the_session_and_a_new_one_opens() -> None:
    t, clock = tracker(), Clock()
    feed(t, clock, status(eto=100_000, rbc=7))
    clock.advance(600)
    step = feed(t, clock, status(eto=101_000, rbc=8))
    assert [s.end_reason for s in step.closed] == [CHARGER_RESTARTED]
    assert step.closed[0].energy_wh == 1000
    assert step.opened[0].eto_start == 101_000


def test_a_session_resumed_from_disk_that_ended_meanwhile_is_a_bridge_gap() -> None:
    t, clock = tracker(), Clock()
    session = feed(t, clock, status(eto=100_000)).opened[0]
    resumed = Tracker("garage", currency="EUR", pricing=None, resumed=session)
    clock.advance(3600)
    closed = feed(resumed, clock, status(car=1, eto=104_000)).closed[0]
    assert closed.end_reason == BRIDGE_GAP
    assert closed.energy_wh == 4000
    assert closed.ended == T0  # when it was last known open, not now


def test_a_resumed_session_with_the_car_still_there_goes_on() -> None:
    t, clock = tracker(), Clock()
    session = feed(t, clock, status(eto=100_000)).opened[0]
    resumed = Tracker("garage", currency="EUR", pricing=None, resumed=session)
    clock.advance(600)
    assert feed(resumed, clock, status(eto=101_000)).closed == []
    assert resumed.open is session
    assert session.energy_wh == 1000


def resumed_after_a_restart(**first: Any) -> tuple[Any, Tracker, Clock]:
    """A session that counted 1000 Wh (wh 1000) before the bridge stopped, and a tracker
    that resumes it from disk, as the next start does."""
    t, clock = tracker(), Clock()
    session = feed(t, clock, status(eto=100_000, wh=0, **first)).opened[0]
    clock.advance(600)
    feed(t, clock, status(eto=101_000, wh=1000, **first))
    resumed = Tracker("garage", currency="EUR", pricing=tracker().pricing, resumed=session)
    return session, resumed, clock


def test_a_car_connected_anew_while_the_bridge_was_away_is_a_new_session() -> None:
    """lccfi (when the car state last left idle) moved under the same rbc: the car left
    and one connected again. The old session ends as last seen; the charger's wh (energy
    since this connection) splits the counter between the two."""
    session, resumed, clock = resumed_after_a_restart(lccfi=5_000, rbt=600_000)
    assert session.connected_ms == 5_000
    seen = clock.now
    clock.advance(7200)
    # Meanwhile: the old car took 3000 Wh more and left; another connected 30 minutes
    # ago (lccfi = rbt - 1800 s) and has taken 2000 Wh (wh).
    rbt = 600_000 + 7_200_000
    step = feed(resumed, clock, status(eto=106_000, wh=2000, lccfi=rbt - 1_800_000, rbt=rbt))
    assert step.replugged is not None
    assert "lccfi" in step.replugged
    [closed], [opened] = step.closed, step.opened
    assert closed is session
    assert (closed.end_reason, closed.ended) == (BRIDGE_GAP, seen)
    assert closed.energy_wh == 4000
    assert closed.cost == pytest.approx(4.0 * 0.30)
    assert not closed.flagged
    assert opened.started == clock.now - 1800
    assert opened.energy_wh == 2000
    assert opened.cost == pytest.approx(2.0 * 0.30)
    assert opened.connected_ms == rbt - 1_800_000
    assert resumed.open is opened
    clock.advance(60)  # and it goes on like any session
    assert feed(resumed, clock, status(eto=106_500, wh=2500, lccfi=rbt - 1_800_000,
                                      rbt=rbt + 60_000)).closed == []  # fmt: skip
    assert opened.energy_wh == 2500


def test_a_charger_session_energy_that_went_back_is_a_new_connection() -> None:
    """No lccfi (older firmware): wh, which counts from each connection, went back."""
    _session, resumed, clock = resumed_after_a_restart()
    clock.advance(3600)
    step = feed(resumed, clock, status(eto=101_700, wh=200))
    assert step.replugged is not None
    assert "wh went from 1000 to 200" in step.replugged
    assert [s.energy_wh for s in step.closed] == [1500]  # to the new connection
    assert [s.energy_wh for s in step.opened] == [200]
    assert step.opened[0].started == clock.now  # no lccfi: when the bridge saw it


def test_another_card_after_the_bridge_was_away_is_a_new_session() -> None:
    _session, resumed, clock = resumed_after_a_restart(trx=1)
    clock.advance(3600)
    step = feed(resumed, clock, status(eto=103_000, wh=2000, trx=2))  # wh rose: no help
    assert step.replugged is not None
    assert "another card: Bob" in step.replugged
    assert [(s.card, s.end_reason) for s in step.closed] == [("Alice", BRIDGE_GAP)]
    assert [s.card for s in step.opened] == ["Bob"]


def test_a_replug_with_the_same_card_and_more_wh_is_told_by_lccfis_time() -> None:
    """Found in review: a session opened before lccfi was known (the first status had no
    lccfi, then the bridge was killed) has no lccfi of its own to compare; the car was
    replugged with the same card and took more (wh 3000 > 1000): it was merged. The time
    lccfi gives (rbt less lccfi ago) is after the session was last seen: another one."""
    session, resumed, clock = resumed_after_a_restart(trx=1, rbt=600_000)
    assert session.connected_ms is None
    seen = clock.now
    clock.advance(7200)
    rbt = 600_000 + 7_200_000  # the old car took 2000 Wh more and left; the same card
    step = feed(resumed, clock, status(eto=106_000, wh=3000, trx=1, lccfi=rbt - 1_800_000,
                                      rbt=rbt))  # fmt: skip
    assert step.replugged is not None
    assert "lccfi says the car connected 5400 s after" in step.replugged
    [closed], [opened] = step.closed, step.opened
    assert (closed.end_reason, closed.ended, closed.energy_wh) == (BRIDGE_GAP, seen, 3000)
    assert (opened.started, opened.energy_wh, opened.card) == (clock.now - 1800, 3000, "Alice")


def test_a_replug_with_the_same_card_and_more_wh_is_told_by_wh_falling_behind_eto() -> None:
    """The same without lccfi at all (older firmware): wh rose by 2000 Wh where eto rose
    by 5000. In one connection they rise together (this session showed it: 1000 and
    1000); after a replug wh counts only the new one."""
    _session, resumed, clock = resumed_after_a_restart(trx=1)
    clock.advance(7200)
    step = feed(resumed, clock, status(eto=106_000, wh=3000, trx=1))
    assert step.replugged is not None
    assert "wh rose by 2000 Wh where eto rose by 5000 Wh" in step.replugged
    assert [s.energy_wh for s in step.closed] == [3000]
    assert [s.energy_wh for s in step.opened] == [3000]


def test_wh_a_little_behind_eto_in_one_connection_is_no_replug() -> None:
    """The tolerance: 40 kWh more by eto, 38.5 by wh (keys seconds apart, rounding) -
    within 100 Wh and 5 %: the same connection goes on, and so does one whose lccfi (first
    seen now) says the car connected before the session opened."""
    session, resumed, clock = resumed_after_a_restart(trx=1, rbt=600_000)
    clock.advance(7200)
    rbt = 600_000 + 7_200_000
    step = feed(resumed, clock, status(eto=141_000, wh=39_500, trx=1,
                                      lccfi=rbt - 7_860_000, rbt=rbt))  # fmt: skip
    assert (step.closed, step.opened, step.replugged) == ([], [], None)
    assert session.energy_wh == 41_000


def test_the_same_connection_after_the_bridge_was_away_goes_on() -> None:
    session, resumed, clock = resumed_after_a_restart(lccfi=5_000, rbt=600_000, trx=1)
    clock.advance(3600)
    step = feed(resumed, clock, status(eto=104_000, wh=4000, lccfi=5_000, rbt=4_200_000, trx=1))
    assert (step.closed, step.opened, step.replugged) == ([], [], None)
    assert resumed.open is session
    assert session.energy_wh == 4000


def test_a_new_lccfi_after_a_charger_restart_is_the_restart_not_another_car() -> None:
    """lccfi is on the charger's clock since boot: another rbc closes it as a restart."""
    _session, resumed, clock = resumed_after_a_restart(lccfi=5_000, rbt=600_000)
    clock.advance(600)
    step = feed(resumed, clock, status(eto=101_500, wh=0, lccfi=3_000, rbt=9_000, rbc=8))
    assert step.replugged is None
    assert [s.end_reason for s in step.closed] == [CHARGER_RESTARTED]


def test_the_grid_share_follows_the_house_meter() -> None:
    assert grid_share(9000, 3000) == pytest.approx(1 / 3)  # the issue's example
    assert grid_share(9000, -2000) == 0.0  # exporting: all PV
    assert grid_share(9000, 12_000) == 1.0  # importing more than the charger draws
    assert grid_share(9000, None) == 1.0  # no PV feed: all grid
    assert grid_share(None, 500) == 1.0


def test_a_session_with_a_pv_reading_splits_grid_and_pv() -> None:
    t, clock = tracker(price=0.30), Clock()
    feed(t, clock, status(eto=100_000, power=9000))
    clock.advance(3600)
    feed(t, clock, status(eto=109_000, power=9000), grid_w=3000)
    closed = feed(t, clock, status(car=1, eto=109_000)).closed[0]
    assert closed.energy_grid_wh == pytest.approx(3000)
    assert closed.energy_pv_wh == pytest.approx(6000)
    assert closed.cost == pytest.approx(0.9)  # the grid part at 0.30; PV at 0 by default


# --- prices ------------------------------------------------------------------------------


def tou(**extra: Any) -> TariffSettings:
    return validate(TariffSettings, {
        "time_of_use": [
            {"days": "mon-fri", "from": "07:00", "to": "22:00", "price": 0.32},
            {"days": "mon-fri", "from": "22:00", "to": "07:00", "price": 0.22},
            {"days": "sat-sun", "from": "00:00", "to": "24:00", "price": 0.12},
        ],
        "timezone": "Europe/Vienna",
        **extra,
    })  # fmt: skip


def test_time_of_use_splits_an_interval_across_a_tariff_change() -> None:
    prices = TimeOfUse(tou())
    # Monday 2026-11-30 21:00 to 23:00 Vienna (UTC+1): an hour at 0.32, an hour at 0.22.
    start = 1_796_068_800.0  # 2026-11-30T20:00:00Z
    assert prices.price_at(start) == 0.32
    assert prices.average(start, start + 7200) == pytest.approx(0.27)
    # Sunday to Monday midnight: weekend price, then the night price.
    sunday_23 = start - 22 * 3600
    assert prices.average(sunday_23, sunday_23 + 7200) == pytest.approx((0.12 + 0.22) / 2)


def night_at_0230(zone: str = "Europe/Vienna") -> TimeOfUse:
    """A boundary inside 02:00-03:00: the hour that does not exist in spring and
    comes twice in autumn."""
    return TimeOfUse(validate(TariffSettings, {
        "time_of_use": [
            {"from": "00:00", "to": "02:30", "price": 0.10},
            {"from": "02:30", "to": "24:00", "price": 0.40},
        ],
        "timezone": zone,
    }))  # fmt: skip


SPRING_0100Z = 1_806_195_600.0  # 2027-03-28T01:00:00Z: Vienna's 02:00 CET becomes 03:00 CEST
AUTUMN_0100Z = 1_792_890_000.0  # 2026-10-25T01:00:00Z: Vienna's 03:00 CEST becomes 02:00 CET


def test_time_of_use_on_the_day_the_clocks_go_forward_follows_the_wall_clock() -> None:
    """02:30 does not exist on 2027-03-28 in Vienna: the night price runs until the clocks
    jump (01:59:59 CET is followed by 03:00 CEST, past 02:30), and not an hour on."""
    prices = night_at_0230()
    assert prices.price_at(SPRING_0100Z - 1) == 0.10  # 01:59:59 CET
    assert prices.price_at(SPRING_0100Z) == 0.40  # 03:00 CEST
    assert prices.price_at(SPRING_0100Z + 1800) == 0.40  # 03:30 CEST
    # 01:30 CET to 03:30 CEST is one hour: half at night, half at day price.
    assert prices.average(SPRING_0100Z - 1800, SPRING_0100Z + 1800) == pytest.approx(0.25)
    # The whole day is 23 hours: 2 h at night (00:00-02:00), 21 h at day price.
    midnight = SPRING_0100Z - 3600  # 00:00 CET
    day = prices.average(midnight, midnight + 23 * 3600)
    assert day == pytest.approx((2 * 0.10 + 21 * 0.40) / 23)
    # A boundary at 02:00 (which does not exist either) is the jump itself.
    at_0200 = TimeOfUse(validate(TariffSettings, {
        "time_of_use": [
            {"from": "00:00", "to": "02:00", "price": 0.10},
            {"from": "02:00", "to": "24:00", "price": 0.40},
        ],
        "timezone": "Europe/Vienna",
    }))  # fmt: skip
    assert at_0200.average(SPRING_0100Z - 1800, SPRING_0100Z + 1800) == pytest.approx(0.25)


def test_time_of_use_on_the_day_the_clocks_go_back_prices_the_repeated_hour_twice() -> None:
    """02:00-03:00 comes twice on 2026-10-25 in Vienna: each half hour by its wall time,
    so the night price comes back when the clocks go back to 02:00."""
    prices = night_at_0230()
    first_0200 = AUTUMN_0100Z - 3600  # 02:00 CEST
    assert [prices.price_at(first_0200 + k * 1800) for k in range(5)] == [
        0.10,  # 02:00 CEST
        0.40,  # 02:30 CEST
        0.10,  # 02:00 CET
        0.40,  # 02:30 CET
        0.40,  # 03:00 CET
    ]
    assert prices.average(first_0200, first_0200 + 7200) == pytest.approx(0.25)
    assert prices.average(first_0200 + 1800, first_0200 + 3600) == pytest.approx(0.40)
    assert prices.average(AUTUMN_0100Z, AUTUMN_0100Z + 1800) == pytest.approx(0.10)
    # The whole day is 25 hours: 2.5 h + 0.5 h at night, 22 h at day price.
    midnight = AUTUMN_0100Z - 3 * 3600  # 00:00 CEST
    day = prices.average(midnight, midnight + 25 * 3600)
    assert day == pytest.approx((3 * 0.10 + 22 * 0.40) / 25)
    # Where the clocks change at another hour (New York, 2026-11-01 at 06:00Z), the same.
    new_york = night_at_0230("America/New_York")
    back = 1_793_512_800.0  # 2026-11-01T06:00:00Z: 02:00 EDT becomes 01:00 EST
    assert new_york.average(back - 3600, back + 3600) == pytest.approx(0.10)
    assert new_york.average(back + 3600, back + 7200) == pytest.approx(0.25)


def test_a_tracker_prices_each_interval_at_its_own_time_of_use_price() -> None:
    from goe2mqtt.ledger.pricing import pricing_for

    t = Tracker("garage", currency="EUR", pricing=pricing_for(tou(), {}))
    clock = Clock()
    clock.now = 1_796_068_800.0 - 3600  # Monday 20:00 Vienna
    feed(t, clock, status(eto=0 + 1000))
    clock.advance(3600)
    feed(t, clock, status(eto=11_000))  # 10 kWh at 0.32
    clock.advance(3600)
    feed(t, clock, status(eto=11_000))  # 21:00-22:00, nothing
    clock.advance(3600)
    feed(t, clock, status(eto=21_000))  # 22:00-23:00: 10 kWh at 0.22
    closed = feed(t, clock, status(car=1, eto=21_000)).closed[0]
    assert closed.cost == pytest.approx(3.2 + 2.2)


@pytest.mark.parametrize(
    ("entries", "message"),
    [
        ([{"days": "mon-sun", "from": "00:00", "to": "12:00", "price": 1},
          {"days": "mon-fri", "from": "11:00", "to": "24:00", "price": 2}],
         "entries 0 and 1 overlap on mon at 11:00"),
        ([{"days": "daily", "from": "00:00", "to": "12:00", "price": 1},
          {"days": "daily", "from": "13:00", "to": "24:00", "price": 2}],
         "no price on mon from 12:00 (a gap next to entry 0 and entry 1)"),
        ([{"days": "mon-fri", "from": "00:00", "to": "24:00", "price": 1}],
         "no price on sat from 00:00"),
        ([{"days": "weekdays", "from": "00:00", "to": "24:00", "price": 1}], "days: 'weekdays'"),
        ([{"from": "7:00", "to": "24:00", "price": 1}], "from: '7:00' is not a time of day"),
    ],
)  # fmt: skip
def test_time_of_use_gaps_and_overlaps_are_refused_naming_the_entries(
    entries: list[dict[str, Any]], message: str
) -> None:
    raw = {"mqtt": {"host": "localhost"}, "chargers": [{"name": "a", "host": "127.0.0.1"}],
           "tariff": {"time_of_use": entries}}  # fmt: skip
    with pytest.raises(ConfigError, match=r"^tariff\.time_of_use") as caught:
        parse_settings(raw)
    assert message in str(caught.value)


def test_a_charger_tariff_replaces_the_global_one_and_two_ways_are_refused() -> None:
    raw: dict[str, Any] = {
        "mqtt": {"host": "localhost"},
        "tariff": {"price_per_kwh": 0.3, "currency": "CHF"},
        "chargers": [{"name": "a", "host": "127.0.0.1"},
                     {"name": "b", "host": "127.0.0.2", "tariff": {"price_topic": "p/now"}}],
    }  # fmt: skip
    settings = parse_settings(raw)
    assert settings.tariff_for(settings.chargers[0]).price_per_kwh == 0.3
    assert settings.tariff_for(settings.chargers[1]).price_topic == "p/now"
    raw["tariff"]["price_topic"] = "p/now"
    with pytest.raises(ConfigError, match="price_per_kwh and price_topic: give one way"):
        parse_settings(raw)


@pytest.mark.parametrize(
    ("payload", "price"), [(b"0.253", 0.253), (b'{"price": -0.05}', -0.05), (b'"0.3"', 0.3)]
)
def test_price_payloads_a_number_or_an_object(payload: bytes, price: float) -> None:
    assert parse_price(payload) == price


@pytest.mark.parametrize(
    "payload", [b"NaN", b"Infinity", b"unavailable", b"1e400", b"1001", b'{"price": "x"}',
                b"true", b"[1]", b"\xff",
                b'"0_3"', '"\u0660.\u0663"'.encode()],  # Python's float() reads 3.0, 0.3
)  # fmt: skip
def test_bad_prices_are_refused_and_the_last_good_one_stays(payload: bytes) -> None:
    price = TopicPrice("p/now")
    assert price.offer(b"0.30", T0) is None
    assert price.offer(payload, T0 + 10) is not None
    assert price.last == (T0, 0.30)
    assert price.average(T0, T0 + 100) == 0.30


def test_a_topic_price_is_averaged_over_time() -> None:
    price = TopicPrice("p/now")
    assert price.average(T0, T0 + 1) is None  # nothing heard yet
    price.offer(b"0.20", T0 + 100)  # the first price stood before we heard it
    price.offer(b"0.40", T0 + 200)
    assert price.average(T0, T0 + 200) == pytest.approx(0.20)
    assert price.average(T0 + 100, T0 + 300) == pytest.approx(0.30)


def test_a_wall_clock_turned_back_changes_nothing_but_the_stamps() -> None:
    t, clock = tracker(), Clock()
    feed(t, clock, status(eto=100_000))
    clock.now -= 3600  # NTP, a wrong RTC: the wall clock jumps back an hour
    clock.mono += 600  # ten minutes really passed
    assert feed(t, clock, status(eto=101_000)).closed == []  # no jump: ages are monotonic
    clock.mono += 60
    closed = feed(t, clock, status(car=1, eto=101_000)).closed[0]
    assert closed.energy_wh == 1000
    assert not closed.flagged
    assert closed.cost == pytest.approx(0.3)
    assert closed.public()["duration_s"] == 0  # never negative


def test_energy_before_the_first_topic_price_is_priced_once_a_price_comes() -> None:
    # A restart mid-session: the charger's first status after it comes before the
    # (retained) price does, or the price topic is not retained and speaks hourly. The
    # first price heard counts backwards, so the energy that waited for it is priced at
    # it; before, that interval left the whole session unpriced (cost null) for good.
    from goe2mqtt.ledger.pricing import pricing_for

    topics: dict[str, TopicPrice] = {}
    pricing = pricing_for(TariffSettings(price_topic="home/price"), topics)
    t, clock = Tracker("garage", currency="EUR", pricing=pricing), Clock()
    feed(t, clock, status(car=2, eto=100_000))
    clock.advance(600)
    feed(t, clock, status(car=2, eto=101_000), grid_w=11_000)  # 1 kWh, no price yet
    assert t.open is not None
    assert t.open.cost is None  # not known yet
    topics["home/price"].offer(b"0.40", clock.now + 1)
    clock.advance(600)
    feed(t, clock, status(car=2, eto=102_000), grid_w=11_000)
    clock.advance(60)
    session = feed(t, clock, status(car=1, eto=102_000)).closed[0]
    assert session.public()["cost"] == 0.80  # 2 kWh at 0.40
    assert not session.flagged
    # A PV share waits for nothing: its own price is known.
    pricing = pricing_for(TariffSettings(price_topic="home/other", pv_price_per_kwh=0.1), topics)
    t, clock = Tracker("garage", currency="EUR", pricing=pricing, pv_price=0.1), Clock()
    feed(t, clock, status(car=2, eto=100_000, power=9000))
    clock.advance(600)
    feed(t, clock, status(car=2, eto=101_500, power=9000), grid_w=3000)  # 1/3 grid
    topics["home/other"].offer(b"0.30", clock.now + 1)
    clock.advance(60)
    session = feed(t, clock, status(car=1, eto=101_500)).closed[0]
    assert session.public()["cost"] == round(0.5 * 0.30 + 1.0 * 0.1, 2)
    # A session that never met a price stays unpriced.
    t, clock = Tracker("garage", currency="EUR", pricing=TopicPrice("home/silent")), Clock()
    feed(t, clock, status(car=2, eto=100_000))
    clock.advance(600)
    feed(t, clock, status(car=2, eto=101_000))
    clock.advance(60)
    assert feed(t, clock, status(car=1, eto=101_000)).closed[0].cost is None


def test_a_time_yaml_read_as_a_number_is_refused_saying_to_quote_it(tmp_path: Any) -> None:
    # YAML 1.1 reads an unquoted 22:00 as 1320 (minutes in base 60) but 07:00 as text:
    # half a table written like the README's without quotes loads, half is refused.
    from goe2mqtt.config.loading import load_settings

    path = tmp_path / "config.yaml"
    path.write_text(
        "mqtt: {host: localhost}\n"
        "chargers: [{name: a, host: 127.0.0.1}]\n"
        "tariff:\n"
        "  time_of_use:\n"
        "    - {days: daily, from: 07:00, to: 22:00, price: 0.32}\n"
        "    - {days: daily, from: 22:00, to: 07:00, price: 0.20}\n"
    )
    with pytest.raises(ConfigError) as caught:
        load_settings(path)
    assert (
        'tariff.time_of_use[0].to: 1320 is how YAML reads 22:00 without quotes: write "22:00"'
        in caught.value.problems
    ), caught.value.problems


def test_a_price_said_again_every_second_keeps_hours_of_changes() -> None:
    """Found by breaking it: a price topic that repeats its price every second (an
    automation on every state update) filled the history (4096 entries) in 68 minutes,
    so a charger offline for three hours had its interval priced at the last hour's
    price: the earlier changes had been pushed out by repeats of the same price."""
    price = TopicPrice("p/now")
    hourly = (0.10, 0.50, 0.20)
    for hour, value in enumerate(hourly):
        for second in range(3600):
            assert price.offer(str(value).encode(), T0 + hour * 3600 + second) is None
    assert price.average(T0, T0 + 3 * 3600) == pytest.approx(sum(hourly) / 3)
    assert price.last == (T0 + 3 * 3600 - 1, 0.20)  # heard last then, for price_refused
