"""The ledger's wall clock going wrong around a restart of the bridge: behind the open
session's last reading (NTP stepped it back, a box without a battery clock booted at an
older time), then set again. The charger's counters and its own clock (rbc, rbt, lccfi)
judge the session, not the wall clock; the session's times stand still until the clock
catches up with them (the running cases: test_ledger.py, test_ledger_hostile.py)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from goe2mqtt.ledger.record import UNPLUGGED
from goe2mqtt.ledger.tracker import Tracker
from tests.unit.test_ledger import T0, Clock, feed, resumed_after_a_restart, status, tracker
from tests.unit.test_ledger_books import ledger_at
from tests.unit.test_ledger_hostile import one_session

HOUR_MS = 3_600_000
BOOT_MS = 600_000  # the charger's rbt when the session was last seen (lccfi 5 s)


def away_an_hour(**clock_at: float) -> tuple[Any, Tracker, Clock, float]:
    """A session seen at T0 + 600 (1000 Wh), the bridge away an hour while the car took
    11 kWh more, and a start on a wall clock set to ``now`` (mono restarted)."""
    session, resumed, clock = resumed_after_a_restart(lccfi=5_000, rbt=BOOT_MS)
    seen = clock.now
    clock.now, clock.mono = clock_at["now"], 50.0
    return session, resumed, clock, seen


def an_hour_on(eto: float = 112_000, wh: float = 12_000, ms: int = HOUR_MS,
               **more: Any) -> dict[str, Any]:  # fmt: skip
    """The charger's status an hour (``ms``) after the session was last seen."""
    return status(eto=eto, wh=wh, lccfi=5_000, rbt=BOOT_MS + ms, **more)


@pytest.mark.parametrize("behind", [1.0, 600.0, 3 * 3600.0])
def test_a_restart_on_a_clock_behind_the_last_reading_counts_what_the_charger_took(
    behind: float,
) -> None:
    """The defect: the wall clock is behind the session's last reading at the start (a
    box whose clock comes from the last shutdown's, a clock NTP stepped back), so the
    time it says passed is none; the 11 kWh the car took meanwhile looked like a counter
    that jumped: the session closed counter_jump, flagged, never priced. The charger's
    clock says an hour passed in the same connection (rbt less lccfi, the same rbc)."""
    session, resumed, clock, seen = away_an_hour(now=T0 + 600 - behind)
    step = feed(resumed, clock, an_hour_on())
    assert (step.closed, step.opened, step.replugged, step.flagged) == ([], [], None, False)
    assert resumed.open is session
    assert (session.energy_wh, session.flags) == (12_000, [])
    assert session.cost == pytest.approx(12 * 0.30)
    assert (session.started, session.seen_at) == (T0, seen)  # stamps stand still


def test_a_clock_behind_that_catches_up_leaves_the_sessions_times_as_they_were() -> None:
    """The clock stays behind for a few readings, then NTP sets it: the session keeps its
    start (not moved back by how far the clock was behind, nor forward by its catching
    up), and lasts what it lasted by the set clock."""
    session, resumed, clock, seen = away_an_hour(now=T0 + 600 - 5 * 3600)
    feed(resumed, clock, an_hour_on())
    clock.advance(60)
    feed(resumed, clock, an_hour_on(112_180, 12_180, HOUR_MS + 60_000))
    assert (session.started, session.seen_at) == (T0, seen)
    clock.now, clock.mono = seen + 3600 + 120, clock.mono + 60  # NTP: the real time
    feed(resumed, clock, an_hour_on(112_360, 12_360, HOUR_MS + 120_000))
    clock.advance(60)
    [closed] = feed(resumed, clock, status(car=1, eto=112_360, wh=12_360)).closed
    assert (closed.end_reason, closed.flags, closed.energy_wh) == (UNPLUGGED, [], 12_360)
    assert (closed.started, closed.ended) == (T0, seen + 3600 + 180)


@pytest.mark.parametrize("ntp_after", [False, True])
def test_a_start_in_1970_keeps_the_session_where_it_was_and_ends_it_no_earlier(
    ntp_after: bool,
) -> None:
    """A box without a battery clock boots in 1970 with a session open on disk (away five
    minutes: 800 Wh, no counter in doubt). The session must not move to 1970 at the
    second reading (a close before NTP left it there, ended in 1970 - another month's,
    pruned as 56 years old; NTP before the close moved it forward by the time the bridge
    was away), nor end before it was last seen."""
    _session, resumed, clock, seen = away_an_hour(now=600.0)
    feed(resumed, clock, an_hour_on(101_800, 1_800, 300_000))
    clock.advance(60)
    feed(resumed, clock, an_hour_on(101_900, 1_900, 360_000))
    if ntp_after:
        clock.now, clock.mono = seen + 360 + 60, clock.mono + 60
        feed(resumed, clock, an_hour_on(102_000, 2_000, 420_000))
    clock.advance(60)
    [closed] = feed(resumed, clock, status(car=1, eto=102_000, wh=2_000)).closed
    assert (closed.energy_wh, closed.flags, closed.started) == (2_000, [], T0)
    assert closed.ended == (seen + 360 + 120 if ntp_after else seen)


def test_without_lccfi_the_chargers_time_since_it_booted_holds_the_time_away() -> None:
    """A firmware without lccfi: its uptime (rbt, the same rbc) is all the charger's clock
    says; the session was seen in this boot, so no more than that passed since."""
    session, resumed, clock = resumed_after_a_restart(rbt=BOOT_MS)
    clock.now, clock.mono = clock.now - 600, 50.0
    step = feed(resumed, clock, status(eto=112_000, wh=12_000, rbt=BOOT_MS + HOUR_MS))
    assert (step.closed, step.flagged, session.energy_wh) == ([], False, 12_000)


def test_a_counter_beyond_what_the_chargers_clock_allows_is_still_a_jump() -> None:
    """The charger's clock lends the time it says passed, no more: 59 kWh in the 70
    minutes since the car connected is more than 44 kW delivers (52.7 kWh with the lag)."""
    session, resumed, clock, seen = away_an_hour(now=T0)
    [closed] = feed(resumed, clock, an_hour_on(eto=160_000, wh=60_000)).closed
    assert closed is session
    assert (closed.end_reason, closed.energy_wh, closed.cost) == ("counter_jump", 1000, None)
    assert closed.ended == seen  # not before its last reading
    assert "eto jumped by 59000 Wh" in closed.flags[0]


def test_a_replug_on_a_clock_behind_splits_the_counter_and_starts_no_earlier() -> None:
    """The car took 3000 Wh more and left; another connected 30 minutes ago and took
    2000 Wh (wh): the old session gets its 3000 Wh (by the charger's clock, not the
    wall clock's none), and the new one starts no earlier than the old was last seen."""
    session, resumed, clock, seen = away_an_hour(now=T0)
    rbt = BOOT_MS + HOUR_MS
    step = feed(resumed, clock, status(eto=106_000, wh=2000, lccfi=rbt - 1_800_000, rbt=rbt))
    [closed], [opened] = step.closed, step.opened
    assert closed is session
    assert (closed.end_reason, closed.ended, closed.energy_wh, closed.flags) == (
        "bridge_gap", seen, 4000, [])  # fmt: skip
    assert (opened.started, opened.seen_at, opened.energy_wh) == (seen, seen, 2000)
    clock.now, clock.mono = seen + 3600, clock.mono + 60  # NTP: no step to move it by
    feed(resumed, clock, status(eto=106_500, wh=2500, lccfi=rbt - 1_800_000, rbt=rbt + 60_000))
    assert (opened.started, opened.seen_at, opened.energy_wh) == (seen, seen + 3600, 2500)


@pytest.mark.parametrize("days", [3, 0.5])
def test_a_restart_on_a_clock_set_days_ahead_moves_the_session_with_it_and_back(
    days: float,
) -> None:
    """The wall clock was set days ahead while the bridge was away (a bad NTP server); the
    charger's clock says an hour passed in the same connection. By more than a day the
    session moves with the clock, as one running does (the running rule), so that NTP
    setting it right moves it back to where it was - not to days before the car came.
    Half a day is a step left as it is: the session lasts that much longer."""
    ahead = days * 86_400
    session, resumed, clock, seen = away_an_hour(now=T0 + 600 + 3600 + ahead)
    since_connected = status(eto=112_000, wh=12_000, lccfi=5_000, rbt=5_000 + 4_200_000)
    step = feed(resumed, clock, since_connected)
    assert (step.closed, session.energy_wh, session.flags) == ([], 12_000, [])
    moved = ahead if days > 1 else 0.0
    assert (session.started, session.seen_at) == (T0 + moved, clock.now)
    clock.now, clock.mono = clock.now - ahead + 60, clock.mono + 60  # NTP sets it right
    feed(resumed, clock, status(eto=112_180, wh=12_180, lccfi=5_000, rbt=5_000 + 4_260_000))
    [closed] = feed(resumed, clock, status(car=1, eto=112_180, wh=12_180)).closed
    assert closed.started == T0
    assert closed.ended == (seen + 3660 if days > 1 else seen + 3600 + ahead)


def test_a_stop_on_a_clock_still_in_1970_does_not_hold_pruning_back(tmp_path: Path) -> None:
    """A box without a battery clock starts in 1970 and is stopped before NTP sets it: the
    stop kept the prune horizon moved to 1970 by that clock, and every later start aged
    the history from there by the time seen to pass - nothing pruned for 56 years,
    keep_days broken (a privacy promise). A stop moves the horizon on, never back."""
    from goe2mqtt.bridge.ledger_out import LedgerOutput
    from goe2mqtt.mqtt.topics import Topics

    path, clock = tmp_path / "s", Clock()
    ledger = ledger_at(path, clock, keep_days=35)
    one_session(ledger, clock)
    ledger.store.close()
    clock.now, clock.mono = 600.0, clock.mono + 3600  # the next start, in 1970
    out = LedgerOutput(Topics("base"))
    out._ledger = ledger_at(path, clock, keep_days=35)
    clock.advance(60)
    out.finish()  # stopped before NTP
    out.close()
    clock.now = T0 + 7200  # started again, the clock set
    ledger = ledger_at(path, clock, keep_days=35)
    clock.advance(40 * 86_400)
    assert ledger.prune() == 1  # 40 days old: gone


def test_a_restart_through_the_store_on_a_clock_behind_keeps_the_session_priced(
    tmp_path: Path,
) -> None:
    """The same as the bridge meets it: the session from the file (its rbc and lccfi kept
    there), the books on a clock 10 minutes behind its last reading; the car leaves
    before the clock catches up."""
    from goe2mqtt.config.tariff import TariffSettings

    path, clock, tariff = tmp_path / "s", Clock(), TariffSettings(price_per_kwh=0.30)
    books = (ledger := ledger_at(path, clock)).books_for("garage", tariff)
    books.observe(status(eto=100_000, wh=0, lccfi=5_000, rbt=5_000), serial=None)
    ledger.commit()
    clock.advance(600)
    books.observe(status(eto=101_000, wh=1000, lccfi=5_000, rbt=605_000), serial=None)
    ledger.write_progress(everything=True)
    ledger.store.close()  # killed
    seen = clock.now
    clock.now, clock.mono = seen - 600, 50.0  # an hour later, on a clock behind
    books = (ledger := ledger_at(path, clock)).books_for("garage", tariff)
    books.observe(status(eto=112_000, wh=12_000, lccfi=5_000, rbt=4_205_000), serial=None)
    clock.advance(60)
    books.observe(status(car=1, eto=112_000, wh=12_000), serial=None)
    ledger.commit()
    [session] = ledger.store.sessions()
    assert (session.end_reason, session.flags, session.energy_wh) == (UNPLUGGED, [], 12_000)
    assert (session.cost, session.started, session.ended) == (3.6, T0, seen)


def test_a_clock_set_ahead_while_away_is_no_replug_where_wh_holds_the_whole_session() -> None:
    """A session stored before lccfi was known is told from a replug by the time lccfi
    gives, on the wall clock: one set two days ahead while the bridge was away put the
    connection two days after the session was last seen - a replug, the session split in
    two. The charger's wh holds all the session's energy (12 kWh, 1 of them seen before
    the bridge went): the car connected before it was last seen."""
    session, resumed, clock = resumed_after_a_restart(trx=1, rbt=BOOT_MS)
    assert session.connected_ms is None
    clock.now, clock.mono = clock.now + 3600 + 2 * 86_400, 50.0
    step = feed(resumed, clock, an_hour_on(trx=1))
    assert (step.closed, step.opened, step.replugged) == ([], [], None)
    assert (session.energy_wh, session.connected_ms) == (12_000, 5_000)


@pytest.mark.parametrize("step_s", [-3 * 86_400.0, 3 * 86_400.0, -3600.0])
def test_a_clock_stepped_while_running_and_set_right_leaves_the_session_where_it_was(
    step_s: float,
) -> None:
    """While the bridge runs (no restart): stepped by days and back, the session moves
    with the clock and back; stepped back an hour, its stamps stand still meanwhile
    (a guard on the running rule, which the resumed cases above reshaped)."""
    t, clock = tracker(), Clock()
    session = feed(t, clock, status(eto=100_000)).opened[0]
    clock.advance(600)
    feed(t, clock, status(eto=101_000))
    clock.now, clock.mono = clock.now + step_s + 60, clock.mono + 60
    feed(t, clock, status(eto=101_100))
    clock.now, clock.mono = clock.now - step_s + 60, clock.mono + 60
    feed(t, clock, status(eto=101_200))
    [closed] = feed(t, clock, status(car=1, eto=101_200)).closed
    assert (closed, closed.flags, closed.energy_wh) == (session, [], 1200)
    assert (closed.started, closed.ended) == (T0, T0 + 720)
