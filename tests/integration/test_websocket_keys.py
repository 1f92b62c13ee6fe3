"""The derived keys across restarts, with simulated websocket chargers and a real
Mosquitto: a restart hashes nothing (the kept keys), a changed password is never served
from the file, and a fleet waiting for its hashes connects once per charger."""

from __future__ import annotations

import asyncio
import contextlib
import threading
from collections.abc import AsyncIterator
from dataclasses import dataclass
from typing import Any

import pytest
import structlog

from goe2mqtt.charger import loop as charger_loop
from goe2mqtt.charger import push_side
from goe2mqtt.config.settings import Settings, parse_settings
from goe2mqtt.goe import ws_auth, ws_keys
from goe2mqtt.goe.websocket import WebSocketLink
from goe2mqtt.goe.ws_protocol import HashKind, hashed_password
from goe2mqtt.mqtt.topics import Topics
from goe2mqtt.sim.broker import MosquittoBroker
from goe2mqtt.sim.simulator import SimulatedCharger, Simulator
from tests.conftest import (
    PASSWORD,
    SERIALS,
    MqttProbe,
    RunningBridge,
    make_settings,
    until,
)

NAMES = ("garage", "carport")


@pytest.fixture
def hashes(monkeypatch: pytest.MonkeyPatch) -> list[str]:
    """The serials the bridge hashed a password for (the simulator's own hashing is
    not counted: it imports the function itself)."""
    computed: list[str] = []

    def counted(password: str, serial: str, kind: HashKind) -> bytes:
        computed.append(serial)
        return hashed_password(password, serial, kind)

    monkeypatch.setattr(ws_keys, "hashed_password", counted)
    return computed


def settings_with(raw: dict[str, Any], password: str) -> Settings:
    for charger in raw["chargers"]:
        charger.update({"transport": "websocket", "password": password})
    return parse_settings(raw)


async def run_until(broker: MosquittoBroker, settings: Settings, connection: str) -> RunningBridge:
    """A bridge started and stopped once every charger's Connection said ``connection``
    (the same client_id and state_dir each time: a restart). Said by this run: the
    last run's retained Connection comes with the probe's subscription, before the mark
    (MqttProbe waits for its backlog), so a restart's "websocket" is never taken from it
    (that stopped the bridge before its chargers authenticated, 0 or 1 of 2 recalled)."""
    topics = Topics(settings.mqtt.base_topic)
    running = RunningBridge(settings)
    async with MqttProbe(broker.host, broker.port, [f"{topics.base}/#"]) as probe:
        mark = probe.mark()
        await running.start()
        try:
            for name in NAMES:
                await probe.wait_for(
                    topics.state(name, "connection"),
                    lambda m: m.text.startswith(connection),
                    since=mark,
                )
        finally:
            await running.stop()
    return running


def connections(sim: Simulator) -> list[int]:
    return [sim.sockets[SERIALS[name]].connections for name in NAMES]


async def test_a_restart_uses_the_kept_keys_and_hashes_nothing(
    broker: MosquittoBroker, push_sim: Simulator, hashes: list[str]
) -> None:
    settings = settings_with(make_settings(broker, push_sim, chargers=NAMES, transport="local"),
                             PASSWORD)  # fmt: skip
    first = await run_until(broker, settings, "websocket")
    assert sorted(hashes) == sorted(SERIALS[n] for n in NAMES)  # one hash each
    assert (first.bridge.derived_keys.derived, first.bridge.derived_keys.recalled) == (2, 0)
    assert connections(push_sim) == [1, 1]

    second = await run_until(broker, settings, "websocket")
    assert len(hashes) == 2, "the restart hashed again"
    assert (second.bridge.derived_keys.derived, second.bridge.derived_keys.recalled) == (0, 2)
    assert connections(push_sim) == [2, 2]  # one connect each per run: the kept key was right


async def test_a_changed_password_is_never_served_from_the_file(
    broker: MosquittoBroker, push_sim: Simulator, hashes: list[str]
) -> None:
    raw = make_settings(broker, push_sim, chargers=NAMES, transport="local")
    await run_until(broker, settings_with(raw, PASSWORD), "websocket")
    assert len(hashes) == 2

    # The configured password changed, the chargers' did not: the kept keys (which the
    # chargers would accept) are not used - the new password is hashed, and refused.
    await run_until(broker, settings_with(raw, "typo-pw"), "polling (websocket: wrong password")
    assert len(hashes) == 4

    # Both changed (a new password set in the app and in the config): hashed anew, live.
    for name in NAMES:
        push_sim.charger(SERIALS[name]).password = "new-pw-8"
        push_sim.sockets[SERIALS[name]]._hashed = None  # the charger's own copy of its hash
    again = await run_until(broker, settings_with(raw, "new-pw-8"), "websocket")
    assert len(hashes) == 6
    assert again.bridge.derived_keys.derived == 2
    # And the next restart uses those.
    last = await run_until(broker, settings_with(raw, "new-pw-8"), "websocket")
    assert len(hashes) == 6
    assert last.bridge.derived_keys.recalled == 2


@dataclass
class HeldFleet:
    """Four bcrypt websocket chargers and a bridge for them (``running``, not started):
    every hash the bridge derives waits at ``gate`` (``held``: the serials that came)."""

    sim: Simulator
    serials: list[str]
    running: RunningBridge
    gate: threading.Event
    held: list[str]

    async def waiting(self) -> None:
        """Every hashing thread holds one, and every charger connected, waiting for its
        auth (the others in the queue)."""
        await until(lambda: len(self.held) >= ws_auth.HASH_THREADS, "hashes held")
        sockets = self.sim.sockets
        await until(lambda: all(sockets[s].connections for s in self.serials), "all connected")

    async def release(self) -> list[int]:
        """The hashes let go, once every charger is live: its connections each."""
        self.gate.set()
        chargers = self.running.bridge.chargers
        await until(lambda: all(c.pushing for c in chargers.values()), "every charger live")
        return [self.sim.sockets[s].connections for s in self.serials]


@contextlib.asynccontextmanager
async def held_fleet(
    broker: MosquittoBroker, monkeypatch: pytest.MonkeyPatch, *, first: int, scan_interval: float
) -> AsyncIterator[HeldFleet]:
    """A first start's queue of hashes (more chargers than hashing threads), held back
    until the test lets them go; chargers from serial ``first`` on."""
    gate, held = threading.Event(), []
    real = ws_auth.derive

    def held_back(password: str, serial: str, kind: HashKind) -> tuple[bytes, Any]:
        held.append(serial)
        gate.wait(30)
        return real(password, serial, kind)

    monkeypatch.setattr(ws_auth, "derive", held_back)
    serials = [f"{first + n:06d}" for n in range(4)]
    sim = Simulator(
        [SimulatedCharger(s, None, password=PASSWORD, hash_kind="bcrypt") for s in serials],
        delta_interval=0.1,
    )
    await sim.start()
    running: RunningBridge | None = None
    try:
        for serial in serials:
            await sim.serve_local(serial)
        raw = make_settings(broker, sim, chargers=(), transport="local")
        raw["chargers"] = [{"name": f"ws{n}", "host": sim.local_hosts[s], "password": PASSWORD,
                            "transport": "websocket", "scan_interval": scan_interval,
                            "timeout": 1.0}
                           for n, s in enumerate(serials)]  # fmt: skip
        running = RunningBridge(parse_settings(raw))
        yield HeldFleet(sim, serials, running, gate, held)
    finally:
        gate.set()
        if running is not None:
            await running.stop()
        await sim.stop()


async def test_a_fleet_waiting_for_its_hashes_connects_once_per_charger(
    broker: MosquittoBroker, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Every hash held back three times the silence limit (a fleet's queue on a first
    start; more chargers than hashing threads): the sockets wait, the silence clock
    paused, none is closed, and each charger connects once."""
    silence = 0.5
    monkeypatch.setitem(WebSocketLink.__init__.__kwdefaults__, "silence", silence)
    async with held_fleet(broker, monkeypatch, first=500000, scan_interval=0.3) as fleet:
        with structlog.testing.capture_logs() as logs:
            await fleet.running.start()
            await fleet.waiting()
            loop = asyncio.get_running_loop()
            held_since = loop.time()
            await until(lambda: loop.time() > held_since + 3 * silence, "past the silence limit")
            connections = await fleet.release()
        assert connections == [1, 1, 1, 1]
        downs = [e for e in logs if e["event"] == "websocket_down"]
        assert downs == [], downs


@pytest.mark.parametrize("settle_at_most", [60.0, 0.0])
async def test_a_charger_waiting_for_its_hash_is_not_polled_meanwhile_within_a_bound(
    broker: MosquittoBroker, monkeypatch: pytest.MonkeyPatch, settle_at_most: float
) -> None:
    """A first start's queue of hashes: a charger whose socket waits for its hash is on
    its way, and an HTTP poll meanwhile would only take the CPU the hashes wait for
    (~8 % of a 10 000-charger restart's, and more at a first start). Bounded: past
    SETTLE_AT_MOST (0 here) it is polled as any charger whose socket is not live."""
    monkeypatch.setattr(charger_loop, "PUSH_START_WAIT", 0.2)  # the first poll's time
    monkeypatch.setattr(push_side, "SETTLE_AT_MOST", settle_at_most)
    async with held_fleet(broker, monkeypatch, first=510000, scan_interval=0.1) as fleet:
        await fleet.running.start()
        await fleet.waiting()
        # Past the first poll's time, ten scan intervals (the same wait polls all four
        # past the bound: the loops look meanwhile).
        loop = asyncio.get_running_loop()
        since = loop.time()
        await until(lambda: loop.time() > since + 1.0, "ten scan intervals")
        polls = [fleet.sim.charger(s).status_calls for s in fleet.serials]
        if settle_at_most:
            assert polls == [0, 0, 0, 0], polls
            assert not any(c.polled_once for c in fleet.running.bridge.chargers.values())
        else:
            assert all(polls), polls  # past the bound: polled as ever
        assert await fleet.release() == [1, 1, 1, 1]


async def test_a_socket_that_fails_at_once_is_polled_at_once(
    broker: MosquittoBroker, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The first connection ends (refused: a wrong password), not under way any more:
    the charger is polled, without waiting for any bound."""
    monkeypatch.setattr(charger_loop, "PUSH_START_WAIT", 0.2)
    serial = "520000"
    sim = Simulator(
        [SimulatedCharger(serial, None, password=PASSWORD, hash_kind="bcrypt")],
        delta_interval=0.1,
    )
    await sim.start()
    running: RunningBridge | None = None
    try:
        await sim.serve_local(serial)
        raw = make_settings(broker, sim, chargers=(), transport="local")
        raw["chargers"] = [
            {"name": "ws", "host": sim.local_hosts[serial], "password": "not-its-pw",
             "transport": "websocket", "scan_interval": 0.1, "timeout": 1.0}
        ]  # fmt: skip
        running = RunningBridge(parse_settings(raw))
        await running.start()
        await until(lambda: sim.charger(serial).status_calls > 0, "polled", within=10)
        charger = running.bridge.chargers["ws"]
        assert not charger.pushing
        assert charger.connection.startswith("polling (websocket: wrong password"), (
            charger.connection
        )
    finally:
        if running is not None:
            await running.stop()
        await sim.stop()
