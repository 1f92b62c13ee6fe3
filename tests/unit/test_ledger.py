"""The session ledger's pure logic and its store: sessions from statuses, energy from
eto, flags for what cannot be right, prices per interval, the PV split, the file."""

from __future__ import annotations

import json
import math
import os
import stat
from pathlib import Path
from typing import Any

import pytest

from goe2mqtt.config.problems import ConfigError
from goe2mqtt.config.settings import parse_settings
from goe2mqtt.config.tariff import TariffSettings
from goe2mqtt.ledger.books import Ledger
from goe2mqtt.ledger.pricing import TimeOfUse, TopicPrice, parse_price
from goe2mqtt.ledger.readings import read
from goe2mqtt.ledger.record import (
    BRIDGE_GAP,
    CHARGER_RESTARTED,
    COUNTER_JUMP,
    UNPLUGGED,
)
from goe2mqtt.ledger.store import SessionStore, StoreUnusable
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
    [(99_000, 600, "backwards"), (100_000 + 500_000, 600, "jumped")],
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
    return TariffSettings.model_validate({
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
                b"true", b"[1]", b"\xff"],
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


# --- the store ---------------------------------------------------------------------------


def test_the_store_is_private_wal_and_keeps_one_open_session_per_charger(tmp_path: Path) -> None:
    path = tmp_path / "state" / "goe2mqtt.sessions"
    store = SessionStore(path)
    t, clock = tracker(), Clock()
    session = feed(t, clock, status(eto=100_000)).opened[0]
    store.save([session])
    assert stat.S_IMODE(os.stat(path).st_mode) == 0o600
    assert store._db.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
    assert store._db.execute("PRAGMA synchronous").fetchone()[0] == 2  # FULL
    other = feed(tracker(), clock, status(eto=5)).opened[0]
    with pytest.raises(StoreUnusable, match="UNIQUE"):  # a second open one: refused
        store.save([other])
    other.charger = "carport"
    store.save_progress([other])  # progress of one never stored: saved whole
    assert {s.charger for s in store.open_sessions()} == {"garage", "carport"}
    store.close()
    reader = SessionStore(path, read_only=True)
    assert {s.id for s in reader.open_sessions()} == {session.id, other.id}
    reader.close()


def test_books_write_progress_in_batches_and_resume_after_a_restart(tmp_path: Path) -> None:
    path = tmp_path / "goe2mqtt.sessions"
    clock = Clock()
    ledger = Ledger(SessionStore(path), clock=lambda: clock.now, monotonic=lambda: clock.mono)
    books = ledger.books_for("garage", TariffSettings(price_per_kwh=0.5))
    books.observe(status(eto=100_000), serial="012345")
    assert ledger.commit() == 1  # opened: on disk before anything is published
    for eto in range(100_100, 101_100, 100):
        clock.advance(5)
        books.observe(status(eto=eto), serial="012345")
    assert ledger.write_progress() == 0  # written at the opening, 50 s ago
    stored = SessionStore(path, read_only=True)
    assert stored.open_sessions()[0].eto_last == 100_000  # progress not yet written
    clock.advance(10)
    books.observe(status(eto=101_500), serial="012345")
    assert ledger.write_progress() == 1  # 60 s after the opening
    assert stored.open_sessions()[0].eto_last == 101_500
    # The process dies (nothing more written); the next one resumes the session.
    ledger2 = Ledger(SessionStore(path), clock=lambda: clock.now, monotonic=lambda: clock.mono)
    books2 = ledger2.books_for("garage", TariffSettings(price_per_kwh=0.5))
    assert books2.open is not None
    assert books2.open.eto_start == 100_000
    clock.advance(60)
    books2.observe(status(eto=102_000), serial="012345")
    clock.advance(5)
    books2.observe(status(car=1, eto=102_000), serial="012345")
    assert list(ledger2.ended) == []  # queued for session/ended once on disk
    assert ledger2.commit() == 1
    assert books2.open is None
    assert books2.last is not None
    assert books2.last.energy_wh == 2000
    assert books2.last.cost == pytest.approx(1.0)
    assert [s.id for s in ledger2.ended] == [books2.last.id]
    assert books2.states()["@last_session_energy"] == 2.0
    assert books2.states()["@month_energy"] == 2.0
    assert books2.states()["@card_0_month_energy"] == 0.0
    ledger2.announced(books2.last)
    assert stored.unannounced() == []
    stored.close()


def test_the_month_and_card_totals_come_from_the_books(tmp_path: Path) -> None:
    clock = Clock()
    ledger = Ledger(SessionStore(tmp_path / "s"), clock=lambda: clock.now,
                    monotonic=lambda: clock.mono)  # fmt: skip
    books = ledger.books_for("garage", TariffSettings(price_per_kwh=0.5, timezone="UTC"))
    eto = 100_000
    for card in (1, 2, 1):
        books.observe(status(eto=eto, trx=card), serial=None)
        clock.advance(600)
        eto += 1000
        books.observe(status(eto=eto, trx=card), serial=None)
        books.observe(status(car=1, eto=eto), serial=None)
        ledger.commit()
        clock.advance(600)
    states = books.states()
    assert states["@month_energy"] == 3.0
    assert states["@month_cost"] == 1.5
    assert states["@card_0_month_energy"] == 2.0
    assert states["@card_1_month_energy"] == 1.0
    # The same month from the file, as a restart finds it.
    again = Ledger(SessionStore(tmp_path / "s"), clock=lambda: clock.now)
    assert again.store.totals_since("garage", T0 - 86_400) == (3000.0, 1.5, {0: 2000.0, 1: 1000.0})


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


def test_a_session_not_acknowledged_before_a_crash_is_published_again(tmp_path: Path) -> None:
    path = tmp_path / "goe2mqtt.sessions"
    clock = Clock()
    ledger = Ledger(SessionStore(path), clock=lambda: clock.now, monotonic=lambda: clock.mono)
    books = ledger.books_for("garage", TariffSettings())
    books.observe(status(eto=100_000), serial=None)
    clock.advance(60)
    books.observe(status(car=1, eto=100_500), serial=None)
    ledger.commit()
    [ended] = ledger.ended
    # The process dies before the broker's PUBACK: the next one owes it, same id.
    again = Ledger(SessionStore(path), clock=lambda: clock.now)
    assert [s.id for s in again.ended] == [ended.id]
    assert again.ended[0].energy_wh == 500
    again.announced(again.ended[0])
    assert list(Ledger(SessionStore(path)).ended) == []  # acknowledged: never again


def test_progress_commits_are_capped_the_longest_waiting_first(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import goe2mqtt.ledger.books as books_module

    monkeypatch.setattr(books_module, "PROGRESS_BATCH", 2)
    clock = Clock()
    ledger = Ledger(SessionStore(tmp_path / "s"), clock=lambda: clock.now,
                    monotonic=lambda: clock.mono)  # fmt: skip
    fleet = [ledger.books_for(name, TariffSettings()) for name in ("a", "b", "c")]
    for books in fleet:
        books.observe(status(eto=100_000), serial=None)
        clock.advance(1)
    ledger.commit()
    clock.advance(120)
    for books in fleet:
        books.observe(status(eto=100_100), serial=None)
    assert ledger.write_progress() == 2
    assert [b.progress_due for b in fleet] == [False, False, True]  # a and b waited longest
    assert ledger.write_progress() == 1  # c with the next call
    stored = SessionStore(tmp_path / "s", read_only=True).open_sessions()
    assert {s.charger: s.eto_last for s in stored} == {"a": 100_100, "b": 100_100, "c": 100_100}


def test_sessions_older_than_keep_days_are_pruned_once_announced(tmp_path: Path) -> None:
    clock = Clock()
    ledger = Ledger(SessionStore(tmp_path / "s"), keep_days=30, clock=lambda: clock.now,
                    monotonic=lambda: clock.mono)  # fmt: skip
    books = ledger.books_for("garage", TariffSettings())
    for _ in range(2):
        books.observe(status(eto=100_000), serial=None)
        clock.advance(60)
        books.observe(status(car=1, eto=100_000), serial=None)
        ledger.commit()
        clock.advance(20 * 86_400)
    first, second = ledger.ended
    ledger.announced(first)
    assert ledger.prune() == 1  # 40 days old and announced
    ledger.announced(second)
    assert ledger.prune() == 0  # 20 days old: kept
    assert [s.id for s in ledger.store.sessions()] == [second.id]


class Channel:
    """What the ledger's publisher publishes to (no broker in the unit tier)."""

    connected = True

    def __init__(self) -> None:
        self.retained: list[tuple[str, bytes]] = []
        self.sent: list[tuple[str, bytes]] = []

    async def publish_retained(self, topic: str, payload: str | bytes) -> None:
        self.retained.append((topic, payload.encode() if isinstance(payload, str) else payload))

    async def publish(self, topic: str, payload: str | bytes, *, qos: int = 1) -> bool:
        self.sent.append((topic, payload.encode() if isinstance(payload, str) else payload))
        return True


async def test_the_session_topic_at_once_on_news_and_at_most_every_10_s_while_it_flows(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import goe2mqtt.bridge.ledger_out as ledger_out
    from goe2mqtt.config.settings import parse_settings
    from goe2mqtt.mqtt.topics import Topics

    clock = Clock()
    monkeypatch.setattr(ledger_out.time, "monotonic", lambda: clock.mono)
    settings = parse_settings({"mqtt": {"host": "localhost"}, "state_dir": str(tmp_path),
                               "chargers": [{"name": "garage", "host": "127.0.0.1"}]})  # fmt: skip
    out = ledger_out.LedgerOutput(Topics("base"), clock=lambda: clock.now)
    ledger = out.open(settings)
    books = ledger.books_for("garage", TariffSettings())
    channel = Channel()

    async def publish_round() -> list[dict[str, Any]]:
        channel.retained.clear()
        assert out._commit()
        await out._session_topics(channel)
        await out._ended(channel)
        return [json.loads(p) for t, p in channel.retained if t == "base/garage/session"]

    books.observe(status(eto=100_000), serial=None)
    assert [s["open"] for s in await publish_round()] == [True]  # opened: at once
    clock.advance(4)
    books.observe(status(eto=100_010), serial=None)
    assert await publish_round() == []  # flowing: not within 10 s
    clock.advance(6)
    assert [s["energy_wh"] for s in await publish_round()] == [10.0]
    clock.advance(1)
    books.observe(status(car=1, eto=100_010), serial=None)
    assert [s["open"] for s in await publish_round()] == [False]  # ended: at once
    assert [t for t, _ in channel.sent] == ["base/garage/session/ended"]
    assert ledger.store.unannounced() == []  # acknowledged, and written so
    out.close()


def test_a_session_counts_in_the_month_it_started_so_the_month_never_drops(
    tmp_path: Path,
) -> None:
    clock = Clock()
    clock.now = 1_796_083_200.0 - 1800  # 2026-11-30T23:30:00Z
    ledger = Ledger(SessionStore(tmp_path / "s"), clock=lambda: clock.now,
                    monotonic=lambda: clock.mono)  # fmt: skip
    books = ledger.books_for("garage", TariffSettings(price_per_kwh=0.5, timezone="UTC"))
    books.observe(status(eto=100_000), serial=None)
    clock.advance(1200)
    books.observe(status(eto=102_000), serial=None)
    assert books.states()["@month_energy"] == 2.0  # still November
    clock.advance(1200)  # December now
    books.observe(status(eto=104_000), serial=None)
    assert books.states()["@session_energy"] == 4.0
    assert books.states()["@month_energy"] == 0.0  # November's session: not December's
    clock.advance(60)
    books.observe(status(car=1, eto=104_000), serial=None)
    assert books.states()["@month_energy"] == 0.0  # and no drop when it ends
    assert books.states()["@last_session_energy"] == 4.0


def test_the_sessions_command_filters_by_charger_day_and_card(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    import yaml

    from goe2mqtt.cli import main

    raw = {"mqtt": {"host": "localhost", "client_id": "books"}, "state_dir": str(tmp_path),
           "tariff": {"price_per_kwh": 0.5, "timezone": "Europe/Vienna"},
           "chargers": [{"name": "garage", "host": "127.0.0.1"}]}  # fmt: skip
    config = tmp_path / "config.yaml"
    config.write_text(yaml.safe_dump(raw))
    assert main(["sessions", "--config", str(config)]) == 1  # no ledger yet: said so
    assert "no ledger yet" in capsys.readouterr().err
    clock = Clock()  # Monday 2026-11-30, 01:53 in Vienna
    ledger = Ledger(SessionStore(tmp_path / "books.sessions"), clock=lambda: clock.now,
                    monotonic=lambda: clock.mono)  # fmt: skip
    books = {n: ledger.books_for(n, TariffSettings(price_per_kwh=0.5)) for n in ("a", "b")}
    for day, (name, card) in enumerate([("a", 1), ("a", 2), ("b", 2)]):
        clock.now = T0 + day * 86_400
        books[name].observe(status(eto=100_000, trx=card), serial=None)
        clock.advance(600)
        books[name].observe(status(eto=101_000 + day, trx=card), serial=None)
        books[name].observe(status(car=1, eto=101_000 + day), serial=None)
        ledger.commit()

    def sessions(*args: str) -> list[dict[str, Any]]:
        capsys.readouterr()  # the ledger's own log lines above
        assert main(["sessions", "--config", str(config), "--format", "json", *args]) == 0
        return list(json.loads(capsys.readouterr().out))

    assert [s["energy_wh"] for s in sessions()] == [1000, 1001, 1002]
    assert [s["energy_wh"] for s in sessions("--charger", "b")] == [1002]
    assert [s["energy_wh"] for s in sessions("--card", "Bob")] == [1001, 1002]
    assert [s["energy_wh"] for s in sessions("--since", "2026-12-01")] == [1001, 1002]
    assert [s["energy_wh"] for s in sessions("--until", "2026-11-30")] == [1000]
    capsys.readouterr()
    assert main(["sessions", "--config", str(config), "--summary", "month,charger",
                 "--format", "csv"]) == 0  # fmt: skip
    assert capsys.readouterr().out.splitlines() == [
        "month,charger,sessions,energy_kwh,grid_kwh,pv_kwh,cost,unpriced",
        "2026-11,a,1,1.000,1.000,0.000,0.50,0",
        "2026-12,a,1,1.001,1.001,0.000,0.50,0",
        "2026-12,b,1,1.002,1.002,0.000,0.50,0",
    ]
    assert main(["sessions", "--config", str(config), "--since", "30.11.2026"]) == 2
    ledger.store.close()
