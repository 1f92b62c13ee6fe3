"""The ledger's promises under hostile conditions: a wall clock that stepped before a
restart, currency rounding over many sessions, a charger that restarts and loses the
last Wh of its counter, a bridge that never runs a whole day."""

from __future__ import annotations

from pathlib import Path

import pytest

from goe2mqtt.config.tariff import TariffSettings
from goe2mqtt.ledger.books import Ledger
from goe2mqtt.ledger.store import SessionStore
from tests.unit.test_ledger import Clock, status
from tests.unit.test_ledger_books import ledger_at, ledger_output, output_running

YEARS_10 = 3650 * 86_400
KEEP_DAYS = 35


def one_session(ledger: Ledger, clock: Clock) -> None:
    """A minute's session at the garage, ended and announced."""
    books = ledger.books.get("garage") or ledger.books_for("garage", TariffSettings())
    books.observe(status(eto=100_000), serial=None)
    clock.advance(60)
    books.observe(status(car=1, eto=100_000), serial=None)
    ledger.commit()
    while ledger.ended:
        ledger.announced(ledger.ended.popleft())


def test_a_session_stored_under_a_clock_years_ahead_does_not_prune_the_history(
    tmp_path: Path,
) -> None:
    """Sessions of real days; then the clock steps 10 years ahead and the bridge records
    a session under it and is restarted (or killed) before its first prune, a day in.
    The next start, still on the bad clock, must not take that session's start for
    "now": the real sessions are days old, not years."""
    path, clock = tmp_path / "s", Clock()
    ledger = ledger_at(path, clock, KEEP_DAYS)
    for _ in range(3):
        one_session(ledger, clock)
        clock.advance(86_400)
    ledger.store.close()
    clock.now += YEARS_10  # an RTC reset, a bad NTP server
    ledger = ledger_at(path, clock, KEEP_DAYS)
    one_session(ledger, clock)  # stored under the bad clock
    ledger.store.close()  # restarted within the day: no prune yet
    clock.advance(3600)
    ledger = ledger_at(path, clock, KEEP_DAYS)
    clock.advance(86_400)  # a day really passes
    ledger.prune()
    assert len(ledger.store.sessions()) == 4  # the real ones are 1-4 days old


async def test_a_bridge_restarted_every_few_hours_still_prunes_after_keep_days(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """keep_days is a promise of privacy too (who charged when, with which card): a
    bridge restarted nightly, by an updater or a watchdog, never runs the day after
    which it used to prune first. A session 40 days old, keep_days 35: gone PRUNE_FIRST
    after a start (an hour; moved to now here), not a day after it."""
    import time

    import goe2mqtt.bridge.ledger_out as ledger_out
    from goe2mqtt.ledger.record import UNPLUGGED, Session
    from tests.conftest import until
    from tests.unit.test_ledger_books import Channel

    monkeypatch.setattr(ledger_out, "PRUNE_FIRST", 0.0, raising=False)
    settings, out = ledger_output(tmp_path, sessions={"keep_days": KEEP_DAYS})
    old = time.time() - 40 * 86_400
    store = SessionStore(ledger_out.sessions_path(settings))
    store.save(
        Session(id=f"garage-{at}", charger="garage", serial=None, started=at - 3600, ended=at,
                end_reason=UNPLUGGED, eto_start=1000.0, eto_last=2000.0, seen_at=at,
                currency="EUR", priced=False, announced=True)
        for at in (old, time.time() - 3600)  # 40 days old, and one of this morning
    )  # fmt: skip
    store.close()
    ledger = out.open(settings)
    async with output_running(out, Channel()):
        await until(lambda: len(ledger.store.sessions()) == 1, "the 40-day-old session pruned")


def test_the_horizon_moves_on_by_each_runs_time_across_restarts(tmp_path: Path) -> None:
    """Runs of 12 hours, each stopped cleanly: the history ages by the time they ran,
    as if the bridge had run through."""
    from goe2mqtt.bridge.ledger_out import LedgerOutput
    from goe2mqtt.mqtt.topics import Topics

    path, clock = tmp_path / "s", Clock()
    ledger = ledger_at(path, clock, KEEP_DAYS)
    one_session(ledger, clock)
    ledger.store.close()
    for _ in range(80):  # 40 days of 12-hour runs
        out = LedgerOutput(Topics("base"))
        out._ledger = ledger_at(path, clock, KEEP_DAYS)
        clock.advance(12 * 3600)
        out.finish()
        out.close()
    ledger = ledger_at(path, clock, KEEP_DAYS)
    assert ledger.prune() == 1


def test_the_costs_of_a_months_sessions_add_up_to_the_months_cost(tmp_path: Path) -> None:
    """A bill, a reimbursement: the sessions' costs as the export shows them (cents) must
    add up to the month's cost in --summary and in Home Assistant. 100 sessions of 125 Wh
    at 0.30 cost 0.0375 each: shown 0.04 each, 4.00 together - not 3.75."""
    import csv
    import io

    from goe2mqtt.ledger import report
    from goe2mqtt.ledger.pricing import zone

    path, clock = tmp_path / "s", Clock()
    ledger = ledger_at(path, clock, keep_days=3650)
    books = ledger.books_for("garage", TariffSettings(price_per_kwh=0.30, timezone="UTC"))
    eto = 100_000
    for _ in range(100):
        books.observe(status(eto=eto), serial=None)
        clock.advance(60)
        eto += 125
        books.observe(status(eto=eto), serial=None)
        books.observe(status(car=1, eto=eto), serial=None)
        ledger.commit()
        clock.advance(60)
    store = SessionStore(path, read_only=True)
    exported = list(csv.DictReader(io.StringIO(report.as_csv(store.sessions(), clock.now))))
    shown = sum(int(row["cost"].replace(".", "")) for row in exported)  # in cents
    assert shown == 400
    [month] = report.summary(store, "month,charger", zone("UTC"), filters={})
    assert round(month[6] * 100) == shown
    assert round(books.states()["@month_cost"] * 100) == shown
    store.close()


def test_a_file_of_an_earlier_version_has_its_costs_in_cents_after_a_start(
    tmp_path: Path,
) -> None:
    """Costs kept to 4 decimals by an earlier version would still not add up: brought to
    cents at the first start of this one (and its version noted, once)."""
    import sqlite3

    from goe2mqtt.ledger import report
    from goe2mqtt.ledger.pricing import zone

    path, clock = tmp_path / "s", Clock()
    ledger = ledger_at(path, clock, KEEP_DAYS)
    books = ledger.books_for("garage", TariffSettings(price_per_kwh=0.30, timezone="UTC"))
    eto = 100_000
    for _ in range(4):
        books.observe(status(eto=eto), serial=None)
        clock.advance(60)
        eto += 125
        books.observe(status(car=1, eto=eto), serial=None)
        ledger.commit()
    ledger.store.close()
    db = sqlite3.connect(path)  # as an earlier version left it
    db.execute("UPDATE sessions SET cost = ROUND(cost_so_far, 4)")
    db.execute("PRAGMA user_version = 0")
    db.commit()
    db.close()
    store = SessionStore(path)
    [month] = report.summary(store, "month,charger", zone("UTC"), filters={})
    assert month[6] == 0.16  # 4 x 0.04, as the export shows each
    assert store._db.execute("PRAGMA user_version").fetchone()[0] >= 1
    store.close()


def test_a_file_written_by_a_newer_version_is_refused_not_misread(tmp_path: Path) -> None:
    """A downgrade after an upgrade that changed the file: what a column means may have
    changed, so the file is neither read nor written - said, with what to do."""
    import sqlite3

    import pytest

    from goe2mqtt.ledger.store import StoreUnusable

    path = tmp_path / "s"
    SessionStore(path).close()
    db = sqlite3.connect(path)
    db.execute("PRAGMA user_version = 99")
    db.commit()
    db.close()
    for read_only in (False, True):
        with pytest.raises(StoreUnusable, match="newer goe2mqtt"):
            SessionStore(path, read_only=read_only)


def test_a_restart_losing_the_last_wh_of_the_counter_ends_the_session_priced() -> None:
    """A power cut mid-session: the charger comes back with a new reboot count, its eto a
    few Wh below the last reading (not yet saved when the power went) and its session
    figure wh from zero. That is a restart - the session ends charger_restarted with the
    energy of its last reading, priced, its wh as it was - not a counter that ran
    backwards (flagged, never priced)."""
    from goe2mqtt.ledger.record import CHARGER_RESTARTED
    from tests.unit.test_ledger import feed, tracker

    t, clock = tracker(), Clock()
    feed(t, clock, status(eto=100_000, wh=0, rbc=7))
    clock.advance(600)
    feed(t, clock, status(eto=101_000, wh=1000, rbc=7))
    clock.advance(120)
    step = feed(t, clock, status(eto=100_990, wh=0, rbc=8))
    [closed] = step.closed
    assert closed.end_reason == CHARGER_RESTARTED
    assert closed.flags == []
    assert closed.energy_wh == 1000
    assert closed.cost == 0.30
    assert closed.charger_wh == 1000
    assert step.opened[0].eto_start == 100_990  # the car still there: counted anew


def test_a_clock_stepped_years_back_shows_that_months_energy_not_all_since(
    tmp_path: Path,
) -> None:
    """The wall clock steps 10 years back (an RTC reset) while the charger idles: by it,
    this month is one of 2016, with no sessions - not every session since then. (Home
    Assistant would take the drop, when the clock is right again, for a reset.)"""
    path, clock = tmp_path / "s", Clock()
    ledger = ledger_at(path, clock, keep_days=3650)
    books = ledger.books_for("garage", TariffSettings(price_per_kwh=0.30, timezone="UTC"))
    books.observe(status(eto=100_000), serial=None)
    clock.advance(600)
    books.observe(status(car=1, eto=101_000), serial=None)
    ledger.commit()
    assert books.states()["@month_energy"] == 1.0
    clock.now -= YEARS_10
    books.observe(status(car=1, eto=101_000), serial=None)
    assert books.states()["@month_energy"] == 0.0
    assert books.states()["@month_cost"] == 0.0
    clock.now += YEARS_10  # put right
    books.observe(status(car=1, eto=101_000), serial=None)
    assert books.states()["@month_energy"] == 1.0


def test_prices_heard_after_a_clock_put_back_from_years_ahead_are_the_prices() -> None:
    """A bad NTP server steps the clock 10 years ahead for a while; a price comes then.
    Put right, the prices heard after must price the energy - not the one from before
    the jump, until the real clock reaches the bad one's time."""
    import pytest

    from goe2mqtt.ledger.pricing import TopicPrice

    price = TopicPrice("p/now")
    t0 = 1_796_000_000.0
    price.offer(b"0.20", t0)
    price.offer(b"0.30", t0 + YEARS_10)  # heard while the clock was years ahead
    price.offer(b"0.40", t0 + 600)  # the clock put right
    assert price.average(t0 + 600, t0 + 1200) == pytest.approx(0.40)
    price.offer(b"0.50", t0 + 1200)
    assert price.average(t0 + 1200, t0 + 1800) == pytest.approx(0.50)
    assert price.last == (t0 + 1200, 0.50)


def test_another_programs_database_is_neither_written_into_nor_read(tmp_path: Path) -> None:
    """A sqlite file that is not a ledger where the ledger should be (a client_id that
    names another program's file, a restore into the wrong folder): the bridge must not
    add its tables to it (nor make it 0600), and `goe2mqtt sessions` says what it is."""
    import os
    import sqlite3

    import pytest

    from goe2mqtt.ledger.store import StoreUnusable

    path = tmp_path / "s"
    db = sqlite3.connect(path)
    db.execute("CREATE TABLE readings (at REAL, value REAL)")
    db.commit()
    db.close()
    os.chmod(path, 0o644)
    for read_only in (False, True):
        with pytest.raises(StoreUnusable, match="not a goe2mqtt session ledger"):
            SessionStore(path, read_only=read_only)
    db = sqlite3.connect(path)
    assert [r[0] for r in db.execute("SELECT name FROM sqlite_master")] == ["readings"]
    db.close()
    assert os.stat(path).st_mode & 0o777 == 0o644
    empty = tmp_path / "empty"
    empty.touch()  # the bridge's first open cut short
    with pytest.raises(StoreUnusable, match="not a goe2mqtt session ledger"):
        SessionStore(empty, read_only=True)
    SessionStore(empty).close()  # the bridge makes it its ledger


def test_a_session_opened_before_the_clock_was_set_is_dated_by_the_set_clock(
    tmp_path: Path,
) -> None:
    """A box without a battery-backed clock boots in 1970; the car is plugged in before
    NTP sets the clock (or a bad NTP server sets it years ahead). The session lasted two
    hours, and belongs to the month it really started in: not 56 years, not January 1970
    (where it would be missing from this month's energy, and pruned as 56 years old)."""
    path, clock = tmp_path / "s", Clock()
    set_at = clock.now
    clock.now = 600.0  # 1970-01-01T00:10:00Z
    ledger = ledger_at(path, clock, keep_days=3650)
    books = ledger.books_for("garage", TariffSettings(price_per_kwh=0.30, timezone="UTC"))
    books.observe(status(eto=100_000), serial=None)
    ledger.commit()
    clock.advance(60)
    books.observe(status(eto=100_100), serial=None)
    clock.now, clock.mono = set_at, clock.mono + 60  # NTP steps the clock
    books.observe(status(eto=100_200), serial=None)
    clock.advance(2 * 3600 - 120)
    books.observe(status(eto=110_000), serial=None)
    books.observe(status(car=1, eto=110_000), serial=None)
    ledger.commit()
    [session] = ledger.store.sessions()
    assert session.ended is not None
    assert session.ended - session.started == 2 * 3600
    assert books.states()["@month_energy"] == 10.0
    clock.advance(86_400)
    while ledger.ended:
        ledger.announced(ledger.ended.popleft())
    assert ledger.prune() == 0


def test_a_topic_price_over_any_interval_is_its_time_weighted_average() -> None:
    """The prices looked up from the newest change back (bench/ledger.py, item 4) are the
    same as a walk over the whole history: intervals before, across, between and after
    the changes, and of no length."""
    import itertools
    import random

    import pytest

    from goe2mqtt.ledger.pricing import TopicPrice

    t0 = 1_796_000_000.0
    price = TopicPrice("p/now")
    changes = [(t0 + i * 900, round(0.1 + (i * 37 % 11) / 100, 2)) for i in range(50)]
    for when, value in changes:
        price.offer(f"{value}".encode(), when)

    def walked(start: float, end: float) -> float:
        def at(t: float) -> float:
            current = changes[0][1]
            for when, value in changes:
                if when <= t:
                    current = value
            return current

        if end <= start:
            return at(end)
        cuts = [start, *(w for w, _ in changes if start < w < end), end]
        return sum(at(a) * (b - a) for a, b in itertools.pairwise(cuts)) / (end - start)

    pick = random.Random(7)
    for _ in range(500):
        start = t0 + pick.uniform(-3600, 50 * 900 + 3600)
        end = start + pick.choice([0.0, 10.0, 899.0, 900.0, 5000.0, 50_000.0])
        assert price.average(start, end) == pytest.approx(walked(start, end)), (start, end)
    assert price.average(t0 + 900, t0 + 1800) == pytest.approx(changes[1][1])  # on changes


async def test_a_session_ended_on_its_way_at_a_clean_stop_is_noted_not_sent_again(
    tmp_path: Path,
) -> None:
    """A car leaves just before a clean stop (SIGTERM): its session/ended is on its way,
    the broker's PUBCOMP a moment off. The stop lets it finish and notes it, so the next
    start does not send it a second time (twice is what a kill -9 may cost, not a stop)."""
    import asyncio

    import goe2mqtt.bridge.ledger_out as ledger_out
    from tests.conftest import until
    from tests.unit.test_ledger_books import Channel

    class SlowBroker(Channel):
        def __init__(self) -> None:
            super().__init__()
            self.pubcomp = asyncio.Event()

        async def publish_once(self, topic: str, payload: str | bytes) -> None:
            await super().publish_once(topic, payload)
            await self.pubcomp.wait()

    settings, out = ledger_output(tmp_path)
    books = out.open(settings).books_for("garage", TariffSettings())
    broker, stop = SlowBroker(), asyncio.Event()
    running = asyncio.create_task(out.run(broker, stop))
    books.observe(status(eto=100_000), serial=None)
    books.observe(status(car=1, eto=100_500), serial=None)
    await until(lambda: broker.sent != [], "session/ended on its way")
    stop.set()  # the bridge stops: its helpers are cancelled
    running.cancel()
    broker.pubcomp.set()  # the broker answers
    await asyncio.wait({running})
    out.finish()
    out.close()
    assert list(ledger_at(ledger_out.sessions_path(settings), Clock()).ended) == []


def test_a_cards_summary_never_adds_one_currency_to_another(tmp_path: Path) -> None:
    """Bob charges at a charger billed in EUR and at one with its own tariff in CHF: his
    month's line must not add 0.30 EUR and 0.40 CHF into 0.70 of nothing - a line per
    currency, which it says."""
    from goe2mqtt.ledger import report
    from goe2mqtt.ledger.pricing import zone

    path, clock = tmp_path / "s", Clock()
    ledger = ledger_at(path, clock, keep_days=3650)
    for name, tariff in (("home", TariffSettings(price_per_kwh=0.30, timezone="UTC")),
                         ("basel", TariffSettings(price_per_kwh=0.40, currency="CHF",
                                                  timezone="UTC"))):  # fmt: skip
        books = ledger.books_for(name, tariff)
        books.observe(status(eto=100_000, trx=2), serial=None)
        clock.advance(600)
        books.observe(status(eto=101_000, trx=2), serial=None)
        books.observe(status(car=1, eto=101_000), serial=None)
        ledger.commit()
    store = SessionStore(path, read_only=True)
    zones = report.Zones(zone("UTC"))
    rows = report.zoned_summary(store, "month,card", zones, charger=None, card=None,
                                since=None, until=None)  # fmt: skip
    assert [(r[1], r[6], r[-1]) for r in rows] == [("Bob", 0.40, "CHF"), ("Bob", 0.30, "EUR")]
    text = report.summary_text(rows, "month,card", "csv").splitlines()
    assert text[0] == "month,card,sessions,energy_kwh,grid_kwh,pv_kwh,cost,unpriced,currency"
    store.close()


def test_a_stale_reading_a_little_behind_the_last_is_no_counter_jump() -> None:
    """The cloud websocket drops mid-charge and the bridge falls back to cloud polling,
    whose data is up to 30 s old: the first poll's eto is a few hundred Wh behind the
    last pushed one. That is a late reading (the same lag a counter's rise is allowed),
    not a counter that ran backwards: the session goes on, unflagged and priced."""
    from goe2mqtt.ledger.record import UNPLUGGED
    from tests.unit.test_ledger import feed, tracker

    t, clock = tracker(), Clock()
    feed(t, clock, status(eto=100_000))
    clock.advance(60)
    feed(t, clock, status(eto=100_500))  # pushed
    clock.advance(5)
    step = feed(t, clock, status(eto=100_320))  # polled: 30 s old
    assert (step.closed, step.flagged) == ([], False)
    clock.advance(30)
    feed(t, clock, status(eto=100_800))
    [closed] = feed(t, clock, status(car=1, eto=100_800)).closed
    assert (closed.end_reason, closed.flags, closed.energy_wh) == (UNPLUGGED, [], 800)
    assert closed.cost == 0.24
