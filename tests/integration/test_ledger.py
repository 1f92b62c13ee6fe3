"""The session ledger through the simulator and a real Mosquitto: a car plugs in, draws
a known energy, unplugs; one session/ended with that energy and its cost. Prices fixed,
by time of use and from MQTT across a change; a counter jump and hostile counters; the
PV split; a charger restart; the CSV export read back with Python's csv module (kill -9
and the websocket: test_ledger_process.py)."""

from __future__ import annotations

import asyncio
import contextlib
import csv
import io
import json
import re
import sys
from collections.abc import AsyncIterator, Callable
from pathlib import Path
from typing import Any

import pytest
import structlog.testing

from goe2mqtt.config.settings import parse_settings
from goe2mqtt.ledger.record import COLUMNS
from goe2mqtt.mqtt.topics import Topics
from goe2mqtt.sim.broker import MosquittoBroker
from goe2mqtt.sim.charger import SimulatedCharger
from goe2mqtt.sim.simulator import Simulator

from ..conftest import (
    SERIALS,
    MqttProbe,
    RunningBridge,
    fill,
    make_settings,
    until,
    write_config,
)

MONDAY_2130_VIENNA = 1_796_070_600.0  # 2026-11-30T20:30:00Z


def shows(text: str, kwh: float) -> bool:
    return text not in ("", "null") and float(text) == kwh


class WallClock:
    def __init__(self, now: float) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now


def ledger_settings(broker: MosquittoBroker, simulator: Simulator, state: Path,
                    tariff: dict[str, Any]) -> dict[str, Any]:  # fmt: skip
    raw = make_settings(broker, simulator, scan_interval=0.2)
    raw["state_dir"] = str(state)
    raw["tariff"] = tariff
    return raw


class Ledgered:
    """A bridge with a tariff, a probe on its topics, the garage charger frozen."""

    def __init__(self, raw: dict[str, Any], probe: MqttProbe, garage: SimulatedCharger,
                 running: RunningBridge, broker: MosquittoBroker) -> None:  # fmt: skip
        self.raw, self.probe, self.garage, self.running = raw, probe, garage, running
        self.broker = broker
        self.topics = Topics(raw["mqtt"]["base_topic"])

    def state(self, key: str) -> str | None:
        return self.probe.last_text(self.topics.state("garage", key))

    async def counted(self, kwh: float) -> None:
        """The bridge has counted the session to this energy (its HA state says so)."""
        await self.probe.wait_for(
            self.topics.state("garage", "session_energy"), lambda m: shows(m.text, kwh)
        )

    async def plug_in(self) -> dict[str, Any]:
        """A car plugs in; the session the bridge opened for it."""
        mark = self.probe.mark()
        self.garage.plug_in()
        opened = await self.probe.wait_for(
            self.topics.session("garage"), lambda m: m.json()["open"], since=mark
        )
        return dict(opened.json())

    async def unplug(self) -> dict[str, Any]:
        """The car leaves; the one session the bridge ended, as it published it."""
        self.garage.unplug()
        await self.probe.wait_for(self.topics.session_ended("garage"))
        [ended] = self.ended()
        return ended

    async def polls(self, count: int = 2) -> None:
        """A few polls from now: what the clock or the price says now is seen."""
        start = self.garage.status_calls
        await until(lambda: self.garage.status_calls >= start + count, "polls")

    def ended(self) -> list[dict[str, Any]]:
        topic = self.topics.session_ended("garage")
        return [m.json() for m in self.probe.messages if m.topic == topic]


@pytest.fixture
def ledgered(broker: MosquittoBroker, simulator: Simulator, tmp_path: Path
             ) -> Callable[..., Any]:  # fmt: skip
    @contextlib.asynccontextmanager
    async def start(tariff: dict[str, Any], clock: WallClock | None = None, *,
                    state: Path | None = None, **mqtt: Any) -> AsyncIterator[Ledgered]:  # fmt: skip
        """The bridge with this tariff (state_dir: ``state``, else one in tmp_path; its
        mqtt section updated with ``mqtt``) serving the garage, online."""
        raw = ledger_settings(broker, simulator, state or tmp_path / "state", tariff)
        raw["mqtt"].update(mqtt)
        garage = simulator.charger("012345")
        garage.unplug()
        garage.freeze()
        options = {"ledger_clock": clock} if clock is not None else {}
        running = RunningBridge(parse_settings(raw), **options)
        topics = Topics(raw["mqtt"]["base_topic"])
        async with MqttProbe(broker.host, broker.port, [f"{topics.base}/#"]) as probe:
            await running.start()
            try:
                await probe.wait_text(topics.availability("garage"), "online")
                yield Ledgered(raw, probe, garage, running, broker)
            finally:
                await running.stop()

    return start


async def test_a_car_plugs_in_draws_a_known_energy_and_unplugs(
    ledgered: Callable[..., Any],
) -> None:
    async with ledgered({"price_per_kwh": 0.30, "currency": "EUR"}) as books:
        garage = books.garage
        garage.trx = 2  # Bob's card
        session_topic = books.topics.session("garage")
        opened = await books.plug_in()
        garage.deliver(700)
        await books.counted(0.7)
        garage.deliver(534)
        await books.counted(1.234)
        ended = await books.unplug()
        assert ended["id"] == opened["id"]
        assert abs(ended["energy_wh"] - 1234) <= 1
        assert ended["cost"] == round(1.234 * 0.30, 2)
        assert ended["currency"] == "EUR"
        assert (ended["card"], ended["card_slot"], ended["ended"]) == ("Bob", 1, "unplugged")
        assert ended["energy_grid_wh"] == ended["energy_wh"]  # no PV feed: all grid
        assert not ended["flagged"]
        ended_topic = books.topics.session_ended("garage")
        assert not next(m for m in books.probe.messages if m.topic == ended_topic).retain
        # The retained topic shows the last session once none is open; HA's sensors too.
        await books.probe.wait_for(session_topic, lambda m: not m.json()["open"])
        async with MqttProbe(books.broker.host, books.broker.port, [session_topic]) as fresh:
            last = await fresh.wait_for(session_topic)
        assert last.retain
        assert last.json()["id"] == ended["id"]
        await until(lambda: books.state("last_session_energy") == "1.234", "last session energy")
        assert books.state("last_session_cost") == "0.37"
        assert books.state("last_session_card") == "Bob"
        assert books.state("energy_this_month") == "1.234"
        assert books.state("card_1_energy_this_month") == "1.234"


async def test_time_of_use_prices_each_interval_across_a_tariff_change(
    ledgered: Callable[..., Any],
) -> None:
    clock = WallClock(MONDAY_2130_VIENNA)  # 0.32 until 22:00, then 0.22
    tariff = {"timezone": "Europe/Vienna", "time_of_use": [
        {"days": "mon-fri", "from": "07:00", "to": "22:00", "price": 0.32},
        {"days": "mon-fri", "from": "22:00", "to": "07:00", "price": 0.22},
        {"days": "sat-sun", "from": "00:00", "to": "24:00", "price": 0.12},
    ]}  # fmt: skip
    async with ledgered(tariff, clock) as books:
        await books.plug_in()
        books.garage.deliver(1000)
        await books.counted(1.0)  # at 21:30
        clock.now += 3600  # 22:30: nothing flowed meanwhile
        await books.polls()
        books.garage.deliver(1000)
        await books.counted(2.0)
        ended = await books.unplug()
        assert ended["cost"] == 0.54  # 1 kWh at 0.32 + 1 kWh at 0.22


async def test_an_mqtt_price_across_a_change_and_bad_prices_keep_the_last(
    ledgered: Callable[..., Any],
    broker: MosquittoBroker,
) -> None:
    clock = WallClock(MONDAY_2130_VIENNA)
    price_topic = f"prices-{id(clock)}/now"
    async with ledgered({"price_topic": price_topic}, clock) as books:
        prices = books.running.bridge.ledger_out.ledger.price_topics[price_topic]
        await books.probe.publish(price_topic, "0.30", retain=True)
        await until(lambda: prices.last is not None, "the first price taken")
        await books.plug_in()
        books.garage.deliver(1000)
        await books.counted(1.0)
        clock.now += 60
        await books.probe.publish(price_topic, '{"price": -0.10}')  # negative: real
        for bad in ("NaN", "unavailable", "1e400", '{"price": 5000}'):
            await books.probe.publish(price_topic, bad)
        await until(lambda: prices.refused == 4, "the bad prices refused")
        assert prices.last == (clock.now, -0.10)  # the last good one stays
        clock.now += 60
        await books.polls()
        books.garage.deliver(1000)
        await books.counted(2.0)
        ended = await books.unplug()
        assert ended["cost"] == 0.20  # 1 kWh at 0.30, then 1 kWh at -0.10
        await books.probe.publish(price_topic, "", retain=True)


async def test_garbage_published_on_a_price_topic_in_a_loop_is_one_log_line(
    ledgered: Callable[..., Any],
) -> None:
    """Anyone who may publish on the price topic (another integration's, rarely behind an
    ACL) sending garbage in a loop made a warning line each: a log that fills a disk."""
    clock = WallClock(MONDAY_2130_VIENNA)
    price_topic = f"prices-{id(clock)}/garbage"
    with structlog.testing.capture_logs() as logs:
        async with ledgered({"price_topic": price_topic}, clock) as books:
            prices = books.running.bridge.ledger_out.ledger.price_topics[price_topic]
            for n in range(200):
                await books.probe.publish(price_topic, f"garbage {n}")
            await until(lambda: prices.refused == 200, "every bad price refused")
    said = [event for event in logs if event["event"] == "price_refused"]
    assert len(said) == 1, len(said)
    assert said[0]["topic"] == price_topic


async def test_energy_that_flowed_before_the_first_price_is_priced_when_it_comes(
    ledgered: Callable[..., Any],
) -> None:
    # A price topic that speaks hourly and is not retained (or a restart mid-session,
    # the charger polled before the retained price arrives): the session's first
    # kilowatt-hour met no price. The first price counts backwards: the whole session
    # is priced at it, instead of the session losing its cost for good.
    clock = WallClock(MONDAY_2130_VIENNA)
    price_topic = f"prices-{id(clock)}/late"
    async with ledgered({"price_topic": price_topic}, clock) as books:
        prices = books.running.bridge.ledger_out.ledger.price_topics[price_topic]
        await books.plug_in()
        books.garage.deliver(1000)
        await books.counted(1.0)
        clock.now += 60
        await books.probe.publish(price_topic, "0.25")
        await until(lambda: prices.last is not None, "the first price taken")
        clock.now += 60
        await books.polls()
        books.garage.deliver(1000)
        await books.counted(2.0)
        ended = await books.unplug()
        assert ended["cost"] == 0.50  # 2 kWh at 0.25
        assert not ended["flagged"]


async def test_a_pv_feed_importing_a_third_of_what_the_charger_draws(
    ledgered: Callable[..., Any],
) -> None:
    async with ledgered({"price_per_kwh": 0.30, "pv_price_per_kwh": 0.06}) as books:
        await books.plug_in()
        await books.polls()
        power = books.garage.power()  # 16 A on 3 phases: about 11 kW
        await books.probe.publish(
            books.topics.command("garage", "pv_feed"), json.dumps({"pGrid": power / 3})
        )
        feed = books.running.bridge.chargers["garage"].pv_feed
        await until(lambda: feed.grid() is not None, "the feed running")
        books.garage.deliver(900)
        await books.counted(0.9)
        ended = await books.unplug()
        assert abs(ended["energy_grid_wh"] - 300) <= 1
        assert abs(ended["energy_pv_wh"] - 600) <= 1
        assert ended["cost"] == round(0.3 * 0.30 + 0.6 * 0.06, 2)


async def test_a_counter_jump_closes_the_session_flagged_and_unpriced(
    ledgered: Callable[..., Any],
) -> None:
    async with ledgered({"price_per_kwh": 0.30}) as books:
        await books.plug_in()
        books.garage.deliver(400)
        await books.counted(0.4)
        books.garage.deliver(5_000_000)  # 5 MWh in a poll: no charger does that
        await books.probe.wait_for(books.topics.session_ended("garage"))
        [ended] = books.ended()
        assert ended["ended"] == "counter_jump"
        assert ended["flagged"] is True
        assert ended["cost"] is None
        assert ended["energy_wh"] == 400
        assert "jumped" in ended["flags"][0]


@pytest.mark.parametrize("hostile", [10**400, "lots", -5], ids=["10**400", "text", "negative"])
async def test_a_hostile_eto_flags_the_session_never_prices_it(
    ledgered: Callable[..., Any], hostile: Any
) -> None:
    async with ledgered({"price_per_kwh": 0.30}) as books:
        await books.plug_in()
        books.garage.deliver(400)
        await books.counted(0.4)
        books.garage.faults.values = {"eto": hostile}
        await books.polls()
        books.garage.faults.values = {}
        books.garage.deliver(100)
        await books.counted(0.5)
        ended = await books.unplug()
        assert ended["flagged"] is True
        assert ended["cost"] is None
        assert ended["energy_wh"] == 500
        assert ended["flags"][0].startswith("eto:")


async def sessions_command(config: Path, *args: str) -> str:
    """`goe2mqtt sessions` as users run it; its standard output."""
    process = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "goe2mqtt", "sessions", "--config", str(config), *args,
        stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE,
    )  # fmt: skip
    out, err = await process.communicate()
    assert process.returncode == 0, err.decode()
    return out.decode()


async def test_sessions_export_is_csv_that_python_reads(ledgered: Callable[..., Any]) -> None:
    async with ledgered({"price_per_kwh": 0.30}) as books:
        for wh in (1000, 500):
            await books.plug_in()
            books.garage.deliver(wh)
            await books.counted(wh / 1000)
            mark = books.probe.mark()
            books.garage.unplug()
            await books.probe.wait_for(books.topics.session_ended("garage"), since=mark)
        config = write_config(Path(books.raw["state_dir"]).parent, books.raw)
        # Read while the bridge runs.
        text = await sessions_command(config, "--format", "csv")
        summary = await sessions_command(config, "--summary", "month,card", "--format", "json")
        table = await sessions_command(config, "--charger", "garage")
    rows = list(csv.DictReader(io.StringIO(text, newline="")))
    assert [float(r["energy_wh"]) for r in rows] == [1000.0, 500.0]
    assert [r["cost"] for r in rows] == ["0.30", "0.15"]
    assert {r["charger"] for r in rows} == {"garage"}
    assert list(rows[0]) == list(COLUMNS)
    [totals] = json.loads(summary)
    assert totals["sessions"] == 2
    assert totals["energy_kwh"] == 1.5
    assert totals["cost"] == 0.45
    assert re.fullmatch(r"\d{4}-\d{2}", totals["month"])
    assert totals["card"] == "none"  # no card used
    assert len(table.splitlines()) == 3  # a header and two sessions


async def test_a_charger_restart_ends_the_session_and_the_car_still_there_opens_the_next(
    ledgered: Callable[..., Any],
) -> None:
    async with ledgered({"price_per_kwh": 0.30}) as books:
        first = await books.plug_in()
        books.garage.deliver(300)
        await books.counted(0.3)
        mark = books.probe.mark()
        books.garage.reboots += 1  # restarted (the car stays plugged in)
        ended = await books.probe.wait_for(books.topics.session_ended("garage"), since=mark)
        following = await books.probe.wait_for(
            books.topics.session("garage"),
            lambda m: m.json()["open"] and m.json()["id"] != first["id"], since=mark,
        )  # fmt: skip
        assert ended.json()["id"] == first["id"]
        assert ended.json()["ended"] == "charger_restarted"
        assert ended.json()["energy_wh"] == 300
        assert following.json()["energy_wh"] == 0


async def test_a_full_disk_holds_the_books_back_until_it_heals_and_says_so_once(
    ledgered: Callable[..., Any], small_disk: Path
) -> None:
    with structlog.testing.capture_logs() as logs:
        async with ledgered({"price_per_kwh": 0.30}, state=small_disk / "state") as books:
            garage = books.garage
            await books.plug_in()
            garage.deliver(400)
            await books.counted(0.4)
            filler = fill(small_disk)
            garage.unplug()  # the closing cannot be written
            await until(lambda: sum(e["event"] == "ledger_write_failed" for e in logs) > 0)
            await books.polls(10)  # a few seconds of a full disk
            assert books.ended() == []  # nothing published before it is on disk
            filler.unlink()
            await books.probe.wait_for(books.topics.session_ended("garage"), within=20)
            [ended] = books.ended()
            assert (ended["energy_wh"], ended["cost"]) == (400, 0.12), ended
    events = [e["event"] for e in logs]
    assert events.count("ledger_write_failed") == 1, events.count("ledger_write_failed")
    assert "ledger_recovered" in events


async def test_a_session_ending_while_the_broker_is_frozen_is_announced_once_it_thaws(
    ledgered: Callable[..., Any], broker: MosquittoBroker
) -> None:
    # keepalive 5: a frozen broker noticed within ~8 s
    async with ledgered({"price_per_kwh": 0.30}, keepalive=5) as books:
        garage = books.garage
        await books.plug_in()
        garage.deliver(700)
        await books.counted(0.7)
        broker.pause()  # SIGSTOP: connections open, nothing answered
        try:
            garage.unplug()
            # Polls go on meanwhile (about two a second here): the closing is seen
            # and written while the bridge notices the freeze (no PUBACK within the
            # keep-alive) and tries to reconnect.
            start = garage.status_calls
            await until(lambda: garage.status_calls >= start + 20, "polls", within=30)
        finally:
            broker.resume()
        await books.probe.wait_for(books.topics.session_ended("garage"), within=30)
        await books.polls(6)  # a second one would show by now
    [ended] = books.ended()
    assert (ended["energy_wh"], ended["cost"], ended["ended"]) == (700, 0.21, "unplugged")


async def test_a_charger_removed_from_the_config_has_its_open_session_closed_at_start(
    broker: MosquittoBroker, simulator: Simulator, tmp_path: Path
) -> None:
    """Carport charges, the bridge stops, carport leaves the config: the next start closes
    its session as last seen (charger_removed) and says so on session/ended."""
    raw = make_settings(broker, simulator, chargers=("garage", "carport"), scan_interval=0.2)
    raw["state_dir"] = str(tmp_path / "state")
    raw["tariff"] = {"price_per_kwh": 0.30}
    topics = Topics(raw["mqtt"]["base_topic"])
    carport = simulator.charger(SERIALS["carport"])
    carport.unplug()
    carport.freeze()
    async with MqttProbe(broker.host, broker.port, [f"{topics.base}/#"]) as probe:
        running = RunningBridge(parse_settings(raw))
        await running.start()
        try:
            carport.plug_in()
            await probe.wait_for(topics.session("carport"), lambda m: m.json()["open"])
            carport.deliver(500)
            await probe.wait_for(
                topics.state("carport", "session_energy"), lambda m: shows(m.text, 0.5)
            )
        finally:
            await running.stop()
        raw["chargers"] = [c for c in raw["chargers"] if c["name"] == "garage"]
        running = RunningBridge(parse_settings(raw))
        await running.start()
        try:
            ended = await probe.wait_for(topics.session_ended("carport"))
        finally:
            await running.stop()
    record = ended.json()
    assert (record["ended"], record["energy_wh"], record["cost"]) == ("charger_removed", 500, 0.15)


async def test_a_car_plugged_in_anew_while_the_bridge_was_away_opens_a_new_session(
    broker: MosquittoBroker, simulator: Simulator, tmp_path: Path
) -> None:
    """The bridge stops mid-session; the car leaves and one is plugged in and charges
    (the charger's wh starts again from 0). The next start ends the old session as last
    seen (bridge_gap) and opens a new one with the new car's energy."""
    raw = ledger_settings(broker, simulator, tmp_path / "state", {"price_per_kwh": 0.30})
    topics = Topics(raw["mqtt"]["base_topic"])
    garage = simulator.charger("012345")
    garage.unplug()
    garage.freeze()
    async with MqttProbe(broker.host, broker.port, [f"{topics.base}/#"]) as probe:
        running = RunningBridge(parse_settings(raw))
        await running.start()
        try:
            garage.plug_in()
            first = await probe.wait_for(topics.session("garage"), lambda m: m.json()["open"])
            garage.deliver(500)
            await probe.wait_for(
                topics.state("garage", "session_energy"), lambda m: shows(m.text, 0.5)
            )
        finally:
            await running.stop()
        garage.unplug()
        garage.plug_in()
        garage.deliver(300)
        mark = probe.mark()
        running = RunningBridge(parse_settings(raw))
        await running.start()
        try:
            ended = await probe.wait_for(topics.session_ended("garage"), since=mark)
            second = await probe.wait_for(
                topics.session("garage"),
                lambda m: m.json()["open"] and m.json()["energy_wh"] == 300,
                since=mark,
            )
        finally:
            await running.stop()
    record = ended.json()
    assert record["id"] == first.json()["id"]
    assert (record["ended"], record["energy_wh"], record["cost"]) == ("bridge_gap", 500, 0.15)
    assert second.json()["id"] != record["id"]
