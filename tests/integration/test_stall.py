"""A broker that freezes (SIGSTOP) or is flooded with HA births: bounded, and noticed."""

from __future__ import annotations

import asyncio
import contextlib
import gc
import logging
from collections.abc import AsyncIterator

import aiomqtt
import pytest
import structlog

from goe2mqtt.config.settings import parse_settings
from goe2mqtt.mqtt.topics import Topics
from goe2mqtt.sim.broker import MosquittoBroker
from goe2mqtt.sim.simulator import Simulator

from ..conftest import (
    MqttProbe,
    RunningBridge,
    Setup,
    cancel,
    make_settings,
    running_bridge,
    until,
)

KEEPALIVE = 6  # seconds; bridge info (the heartbeat) then goes out every 3 s


async def test_a_frozen_broker_holds_no_poll_loop_and_is_noticed_within_1_5_keepalives(
    own_broker: MosquittoBroker, simulator: Simulator, caplog: pytest.LogCaptureFixture
) -> None:
    raw = make_settings(own_broker, simulator, chargers=("garage", "carport"), scan_interval=0.1)
    raw["mqtt"]["keepalive"] = KEEPALIVE
    for charger in raw["chargers"]:
        charger["idle_scan_interval"] = 0.1
    settings = parse_settings(raw)
    topics = Topics(settings.mqtt.base_topic)
    for serial in ("012345", "067890"):
        simulator.charger(serial).plug_in()  # charging: energy changes on every poll
    running = RunningBridge(settings)
    await running.start()
    session = running.bridge.mqtt
    caplog.set_level(logging.WARNING)
    try:
        async with MqttProbe(own_broker.host, own_broker.port, [f"{topics.base}/#"]) as probe:
            await probe.wait_text(topics.state("garage", "car_status"), "charging")
        polls = simulator.charger("012345").status_calls
        with structlog.testing.capture_logs() as logs:
            own_broker.pause()
            frozen = asyncio.get_running_loop().time()
            await until(lambda: not session.connected, "the frozen broker noticed", within=20)
            noticed = asyncio.get_running_loop().time() - frozen
            # Polling went on at its pace all along: about ten polls a second.
            assert simulator.charger("012345").status_calls - polls >= 5 * noticed
            # Changes wait as one entry per topic (newest wins), not one per change: a
            # family (a charger's discovery configs) holds its members' topics.
            held = sum(
                1 if isinstance(value, bytes) else value.size
                for value in session._store.retained.values()
            )
            assert session.backlog <= held
            await asyncio.sleep(2)
            own_broker.resume()
            await until(lambda: session.connected, "reconnected", within=20)
        stalled = [e for e in logs if e["event"] == "mqtt_disconnected"]
        assert stalled
        assert stalled[0]["error"] == f"no PUBACK within {KEEPALIVE} s"
        assert noticed <= 1.5 * KEEPALIVE + 2  # +2: a poll of the watchdog, a busy machine
        loud = [e["event"] for e in logs if e["log_level"] in ("warning", "error", "critical")]
        assert len(loud) < 10, loud  # a handful of lines, no flood
        async with MqttProbe(own_broker.host, own_broker.port, [f"{topics.base}/#"]) as late:
            await late.wait_text(topics.availability("garage"), "online")
            await late.wait_text(topics.state("garage", "car_status"), "charging")
    finally:
        own_broker.resume()
        await running.stop()
    gc.collect()  # "never retrieved" is reported when a failed future is collected
    noisy = [r.getMessage() for r in caplog.records if r.levelno >= logging.WARNING]
    assert not [m for m in noisy if "never retrieved" in m or "pending publish" in m], noisy


@pytest.mark.parametrize("setup", [{"scan_interval": 60}], indirect=True)
async def test_home_assistant_births_in_a_row_make_one_republish(
    setup: Setup, probe: MqttProbe
) -> None:
    running = RunningBridge(setup.settings, birth_delay=(0.5, 0.5))  # production: 0.5-2 s
    await running.start()
    try:
        config = f"{setup.prefix}/sensor/{setup.topics.base}/garage_energy_total/config"
        await probe.wait_for(config)
        await probe.wait_text(setup.topics.availability("garage"), "online")
        mark = probe.mark()
        for _ in range(30):
            await probe.publish(f"{setup.prefix}/status", "online")
        await probe.wait_for(config, since=mark)
        await asyncio.sleep(1.0)  # any further republish would be here by now
    finally:
        await running.stop()
    assert len(probe.since(mark, config)) == 1
    assert len(probe.since(mark, setup.state("garage", "energy_total"))) == 1


async def _births(broker: MosquittoBroker, topic: str) -> None:
    """Someone says Home Assistant is online, again and again (a looping flow, a test
    tool left running): a hundred births a second."""
    async with aiomqtt.Client(broker.host, broker.port, identifier="birth-flood") as client:
        while True:
            await client.publish(topic, "online", qos=0)
            await asyncio.sleep(0.01)  # the flood's pace, not a wait for anything


@contextlib.asynccontextmanager
async def _birth_flood(broker: MosquittoBroker, setup: Setup) -> AsyncIterator[None]:
    """Births flooding in (``_births``) while the block runs."""
    flood = asyncio.create_task(_births(broker, f"{setup.prefix}/status"))
    try:
        yield
    finally:
        await cancel(flood)


async def test_a_flood_of_home_assistant_births_holds_back_no_change_and_no_result(
    broker: MosquittoBroker, setup: Setup, probe: MqttProbe
) -> None:
    # Each birth (after the test's 0-50 ms delay) owed everything again. It used to put
    # every topic back in the order of its last change, the re-send begun anew: with
    # births coming faster than one re-send takes (two chargers' ~500 topics here, a
    # thousand chargers' 30 s in production), what changed after the first birth stayed
    # behind the re-send for as long as the births came, and a command's result, which
    # waits for the states it reports, never came.
    # Re-sends as often as births come (no spacing): what a flapping broker's reconnects
    # do to the store too.
    async with (
        running_bridge(setup, probe, birth_spacing=0.0) as bridge,
        _birth_flood(broker, setup),
    ):
        await until(lambda: bridge.bridge.mqtt.backlog > 0, "a birth's re-send under way")
        result = await probe.command(setup.cmd("garage", "change_charging_power"), "12")
        assert result["ok"] is True, result
        await probe.wait_text(setup.state("garage", "charging_current"), "12")


async def test_a_flood_of_home_assistant_births_makes_one_re_send_per_spacing(
    broker: MosquittoBroker, setup: Setup, probe: MqttProbe
) -> None:
    # Each costs a thousand chargers 30 s of sending; a flood of births used to keep the
    # bridge re-sending everything for as long as it lasted.
    async with running_bridge(setup, probe, birth_spacing=3600.0) as bridge:
        housekeeping = bridge.bridge._housekeeping
        with structlog.testing.capture_logs() as logs:
            async with _birth_flood(broker, setup):
                await until(lambda: housekeeping._resent_at is not None, "the first re-send")
                births = len(probe.since(0, f"{setup.prefix}/status"))
                await until(
                    lambda: len(probe.since(0, f"{setup.prefix}/status")) > births + 100,
                    "a hundred births more",
                )
                # Those births are in the bridge before this command (one connection, in
                # order).
                result = await probe.command(setup.cmd("garage", "change_charging_power"), "12")
                assert result["ok"] is True, result
                assert housekeeping._birth_pending  # the next re-send: waiting for its turn
        republished = [e for e in logs if e["event"] == "home_assistant_online"]
        assert len(republished) == 1, len(republished)


async def test_births_that_keep_coming_are_re_sent_for_at_growing_intervals(
    broker: MosquittoBroker, setup: Setup, probe: MqttProbe
) -> None:
    """One tiny message cost a thousand chargers 25 CPU-seconds of re-sending, as often
    as every 30 s: the spacing doubles while births keep coming."""
    spacing = 0.05
    bridge = RunningBridge(setup.settings, birth_spacing=spacing)
    await bridge.start()
    flood: asyncio.Task[None] | None = None
    housekeeping = bridge.bridge._housekeeping
    try:
        await probe.wait_text(setup.topics.availability("garage"), "online")
        with structlog.testing.capture_logs() as logs:
            flood = asyncio.create_task(_births(broker, f"{setup.prefix}/status"))
            await until(
                lambda: sum(e["event"] == "home_assistant_online" for e in logs) >= 4,
                "four re-sends",
                within=30,
            )
            assert housekeeping._spacing >= spacing * 2**3  # doubled after each of three
    finally:
        if flood is not None:
            await cancel(flood)
        await bridge.stop()


class FarBroker:
    """The broker far away (a cloud broker, a slow link): what it sends reaches the
    bridge ``delay`` later, in order. Only for the bridge; the test's own clients go
    to the broker directly."""

    def __init__(self, broker: MosquittoBroker, delay: float) -> None:
        self._broker, self._delay = broker, delay
        self._server: asyncio.Server | None = None
        self._tasks: set[asyncio.Task[None]] = set()
        self.port = 0

    async def __aenter__(self) -> FarBroker:
        self._server = await asyncio.start_server(self._serve, "127.0.0.1", 0)
        self.port = self._server.sockets[0].getsockname()[1]
        return self

    async def __aexit__(self, *exc: object) -> None:
        assert self._server is not None
        self._server.close()
        for task in list(self._tasks):
            await cancel(task)

    async def _serve(self, client_r: asyncio.StreamReader, client_w: asyncio.StreamWriter) -> None:
        broker_r, broker_w = await asyncio.open_connection(self._broker.host, self._broker.port)
        loop = asyncio.get_running_loop()
        later: asyncio.Queue[tuple[float, bytes]] = asyncio.Queue()

        async def up() -> None:
            while data := await client_r.read(65536):
                broker_w.write(data)
                await broker_w.drain()

        async def down() -> None:
            while data := await broker_r.read(65536):
                later.put_nowait((loop.time() + self._delay, data))
            later.put_nowait((loop.time() + self._delay, b""))

        async def deliver() -> None:
            while True:
                due, data = await later.get()
                await asyncio.sleep(max(0.0, due - loop.time()))  # the link's latency
                if not data:
                    return
                client_w.write(data)
                await client_w.drain()

        tasks = {asyncio.create_task(step()) for step in (up, down, deliver)}
        self._tasks |= tasks
        try:
            await asyncio.wait(tasks, return_when=asyncio.FIRST_COMPLETED)
        finally:
            for task in tasks:
                task.cancel()
            for writer in (client_w, broker_w):
                writer.close()
            self._tasks -= tasks


async def test_a_stop_with_much_owed_to_a_far_broker_still_says_offline(
    broker: MosquittoBroker, simulator: Simulator
) -> None:
    # The goodbye (what is owed, the chargers' offline, then the bridge's offline) had 5 s
    # as one: what was owed went first, one publish at a time, and with hundreds owed
    # (Home Assistant's birth just before, a reconnect) at a round trip of 0.1 s the
    # offline never went out. The disconnect is a clean one: the broker keeps the will
    # to itself, and "online" stayed retained for a bridge that was gone.
    async with FarBroker(broker, delay=0.1) as far:
        raw = make_settings(broker, simulator, chargers=("garage", "carport"), scan_interval=60)
        raw["mqtt"]["port"] = far.port
        settings = parse_settings(raw)
        topics = Topics(settings.mqtt.base_topic)
        prefix = settings.mqtt.discovery_prefix
        running = RunningBridge(settings)
        async with MqttProbe(broker.host, broker.port, [f"{topics.base}/#"]) as probe:
            await running.start()
            try:
                for name in ("garage", "carport"):
                    await probe.wait_text(topics.availability(name), "online")
                await probe.publish(f"{prefix}/status", "online")  # Home Assistant's birth
                await until(lambda: running.bridge.mqtt.backlog > 200, "everything owed again")
                mark = probe.mark()
            finally:
                await running.stop()
            await probe.wait_text(topics.bridge_availability, "offline", since=mark)
