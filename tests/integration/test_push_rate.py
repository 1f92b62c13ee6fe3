"""A websocket peer that changes a key far faster than a charger does: its values are
merged, at most a few publishes a second per topic, and the last value always arrives
(issue 27, item 13). The peer is written here, not in the friendly simulator."""

from __future__ import annotations

import asyncio
import json
import uuid
from collections.abc import AsyncIterator

import pytest
from aiohttp import web

from goe2mqtt.config.settings import parse_settings
from goe2mqtt.mqtt.topics import Topics
from goe2mqtt.sim.broker import MosquittoBroker
from goe2mqtt.sim.charger import SimulatedCharger
from tests.conftest import SERIALS, MqttProbe, RunningBridge

BURST = 400  # deltas, each changing amp
PACE = 0.002  # seconds between two deltas: 500 a second, spread as a charger's would be
LAST = 13  # the burst's last value, and the only delta that sends it


class FastPeer:
    """A charger's websocket, unsecured: hello, one full status, then deltas on demand,
    hundreds a second."""

    def __init__(self) -> None:
        self.status = SimulatedCharger(SERIALS["garage"]).status()
        self.sockets: list[web.WebSocketResponse] = []
        self.url = ""
        self._runner: web.AppRunner | None = None

    async def start(self) -> None:
        app = web.Application()
        app.router.add_get("/ws", self._handle)
        self._runner = web.AppRunner(app)
        await self._runner.setup()
        site = web.TCPSite(self._runner, "127.0.0.1", 0)
        await site.start()
        port = site._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]
        self.url = f"127.0.0.1:{port}"

    async def stop(self) -> None:
        for socket in self.sockets:
            await socket.close()
        if self._runner is not None:
            await self._runner.cleanup()

    async def _handle(self, request: web.Request) -> web.WebSocketResponse:
        socket = web.WebSocketResponse(heartbeat=None)
        await socket.prepare(request)
        await socket.send_str(json.dumps({
            "type": "hello", "serial": SERIALS["garage"], "secured": False, "protocol": 2,
        }))  # fmt: skip
        await socket.send_str(
            json.dumps({"type": "fullStatus", "partial": False, "status": self.status})
        )
        self.sockets.append(socket)
        async for _ in socket:  # the bridge writes nothing here; keep it open
            pass
        return socket

    async def burst(self, values: list[int]) -> None:
        socket = self.sockets[-1]
        for value in values:
            await socket.send_str(json.dumps({"type": "deltaStatus", "status": {"amp": value}}))
            await asyncio.sleep(PACE)  # not one batch: the bridge gets to publish between


@pytest.fixture
async def fast_peer() -> AsyncIterator[FastPeer]:
    peer = FastPeer()
    await peer.start()
    yield peer
    await peer.stop()


async def test_a_key_changing_hundreds_of_times_a_second_is_merged_and_its_last_value_arrives(
    broker: MosquittoBroker, fast_peer: FastPeer
) -> None:
    run = uuid.uuid4().hex[:8]
    settings = parse_settings({
        "mqtt": {"host": broker.host, "port": broker.port, "client_id": f"goe2mqtt-{run}",
                 "base_topic": f"goe{run}", "discovery": False},
        "chargers": [{"name": "garage", "host": fast_peer.url, "transport": "websocket",
                      "password": "unused: the peer asks for none", "scan_interval": 0.3}],
    })  # fmt: skip
    topics = Topics(settings.mqtt.base_topic)
    amp = topics.state("garage", "charging_current")
    running = RunningBridge(settings)
    async with MqttProbe(broker.host, broker.port, [f"{topics.base}/#"]) as probe:
        await running.start()
        try:
            await probe.wait_text(topics.state("garage", "connection"), "websocket")
            await probe.wait_text(amp, "16")
            mark = probe.mark()
            values = [6 + i % 7 for i in range(BURST - 1)] + [LAST]  # 6..12, then 13
            await fast_peer.burst(values)
            # The last delta is the only one with this value: once it is out, every
            # delta before it was handled (a socket's frames are read in order).
            await probe.wait_text(amp, str(LAST), since=mark)
        finally:
            await running.stop()
    published = [m.text for m in probe.since(mark, amp)]
    states = probe.since(mark, topics.json_state("garage"))
    assert published[-1] == str(LAST)
    assert json.loads(states[-1].text)["charging_current"] == LAST
    assert len(published) <= BURST // 10, f"{len(published)} publishes for {BURST} deltas"
    assert len(states) <= BURST // 10
