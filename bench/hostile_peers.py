"""Hostile peers for bench/chaos.py --hostile-peers: a charger's websocket that plays
every trick issue 27 found, and a publisher on the broker that spoofs and floods a
charger's own MQTT topics. Both run beside the normal fleet; the bridge must stay
bounded in memory and answer every command.

Each connection to the hostile websocket gets the next trick in TRICKS (the bridge
reconnects with backoff, so over half an hour each comes many times):

    partial_flood   authenticates, then endless fullStatus parts (partial: true) with new keys
    unknown_deltas  a real full status, then deltas of unknown keys, 20 a second
    wrong_serial    a real full status, then a delta claiming another serial
    no_auth         hello, then deltas without ever asking for auth
    silent          a real full status, then nothing
    late_replies    a live charger that answers each write late, with another write's id
    bad_serial      hello with a serial of non-ASCII digits, bcrypt asked for
"""

from __future__ import annotations

import asyncio
import itertools
import json
import random
import time
from collections import Counter
from typing import Any

import aiomqtt
from aiohttp import WSMsgType, web

from goe2mqtt.goe.ws_protocol import decode, encode
from goe2mqtt.sim.charger import SimulatedCharger

TRICKS = (
    "partial_flood", "unknown_deltas", "wrong_serial", "no_auth", "silent", "late_replies",
    "bad_serial",
)  # fmt: skip
TRICK_SECONDS = 60.0  # how long one connection plays its trick at most
SPOOFED_AMP = 31  # the commands in the soak never set 31: a 31 on MQTT came from the spoofer


class HostileWebSocket:
    """A charger's websocket that is not a charger (serial ``serial``)."""

    def __init__(self, serial: str, token: str) -> None:
        self.serial = serial
        self._status = SimulatedCharger(serial, token).status()
        self._tricks = itertools.cycle(TRICKS)
        self.played: Counter[str] = Counter()
        self._runner: web.AppRunner | None = None
        self.address = ""

    async def start(self) -> str:
        app = web.Application()
        app.router.add_get("/ws", self._handle)
        self._runner = web.AppRunner(app, handle_signals=False)
        await self._runner.setup()
        site = web.TCPSite(self._runner, "127.0.0.1", 0)
        await site.start()
        port = site._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]
        self.address = f"127.0.0.1:{port}"
        return self.address

    async def stop(self) -> None:
        if self._runner is not None:
            await self._runner.cleanup()

    async def _handle(self, request: web.Request) -> web.StreamResponse:
        socket = web.WebSocketResponse(max_msg_size=1 << 20, heartbeat=None)
        await socket.prepare(request)
        trick = next(self._tricks)
        self.played[trick] += 1
        try:
            async with asyncio.timeout(TRICK_SECONDS):
                await getattr(self, f"_{trick}")(socket)
        except (TimeoutError, ConnectionError, RuntimeError):
            pass
        finally:
            await socket.close()
        return socket

    def _hello(self, serial: str | None = None) -> str:
        return encode({"type": "hello", "serial": serial or self.serial, "hostname": "hostile",
                       "devicetype": "go-eCharger", "version": "0.5", "protocol": 2,
                       "secured": False})  # fmt: skip

    async def _authenticate(self, socket: web.WebSocketResponse, hash_kind: str = "pbkdf2") -> None:
        await socket.send_str(self._hello())
        await socket.send_str(encode({"type": "authRequired", "token1": "t1", "token2": "t2",
                                      "hash": hash_kind}))  # fmt: skip
        await socket.receive()  # whatever it answers: a hostile peer lets everyone in
        await socket.send_str(encode({"type": "authSuccess", "token1": "t1", "token2": "t2"}))

    async def _full(self, socket: web.WebSocketResponse) -> None:
        await socket.send_str(encode({"type": "fullStatus", "partial": False,
                                      "status": self._status}))  # fmt: skip

    async def _partial_flood(self, socket: web.WebSocketResponse) -> None:
        await self._authenticate(socket)
        for n in itertools.count():
            status = {f"x{n}_{i}": "p" * 99_000 for i in range(10)}
            await socket.send_str(encode({"type": "fullStatus", "partial": True, "status": status}))
            await asyncio.sleep(0.2)

    async def _unknown_deltas(self, socket: web.WebSocketResponse) -> None:
        await self._authenticate(socket)
        await self._full(socket)
        for n in itertools.count():
            delta = {f"u{n}_{i}": "d" * 4000 for i in range(20)}
            await socket.send_str(encode({"type": "deltaStatus", "status": delta}))
            await asyncio.sleep(0.05)

    async def _wrong_serial(self, socket: web.WebSocketResponse) -> None:
        await self._authenticate(socket)
        await self._full(socket)
        await socket.send_str(encode({"type": "deltaStatus",
                                      "status": {"sse": "999999", "amp": 13}}))  # fmt: skip
        await socket.receive()

    async def _no_auth(self, socket: web.WebSocketResponse) -> None:
        await socket.send_str(self._hello())
        for n in itertools.count():
            await socket.send_str(encode({"type": "deltaStatus", "status": {"amp": 6 + n % 10}}))
            await asyncio.sleep(0.5)

    async def _silent(self, socket: web.WebSocketResponse) -> None:
        await self._authenticate(socket)
        await self._full(socket)
        await asyncio.sleep(TRICK_SECONDS)

    async def _late_replies(self, socket: web.WebSocketResponse) -> None:
        await self._authenticate(socket)
        await self._full(socket)
        last_id: Any = 0
        while True:
            try:
                frame = await socket.receive(timeout=1.0)
            except TimeoutError:
                await socket.send_str(encode({"type": "deltaStatus",
                                              "status": {"utc": time.time()}}))  # fmt: skip
                continue
            if frame.type is not WSMsgType.TEXT:
                return
            message = decode(frame.data) or {}
            if message.get("type") in ("setValue", "securedMsg"):
                await asyncio.sleep(1.5)
                answer = {"type": "response", "requestId": last_id, "success": False,
                          "message": "refused (late, and for another write)"}  # fmt: skip
                await socket.send_str(encode(answer))
                last_id = message.get("requestId")

    async def _bad_serial(self, socket: web.WebSocketResponse) -> None:
        await socket.send_str(self._hello("12\u00b2345"))
        await socket.send_str(encode({"type": "authRequired", "token1": "t1", "token2": "t2",
                                      "hash": "bcrypt"}))  # fmt: skip
        await socket.receive()


class Spoofer:
    """Anyone on the broker: publishes a charger's values in its other topic form,
    answers its writes with success, and floods its own topics now and then."""

    def __init__(self, host: str, port: int, serial: str, prefix: str = "go-eCharger") -> None:
        self._host, self._port = host, port
        self._real = f"{prefix}/{serial}"
        self._other = f"/{prefix}/{serial}"
        self.counts: Counter[str] = Counter()

    async def run(self, deadline: float, flood_every: float = 60.0, flood: int = 1000) -> None:
        next_flood = time.monotonic() + random.uniform(10, flood_every)
        while time.monotonic() < deadline:
            try:
                async with aiomqtt.Client(
                    self._host, self._port, identifier="chaos-spoofer", timeout=10
                ) as client:
                    await client.subscribe(f"{self._real}/+/set")
                    await client.subscribe(f"{self._other}/+/set")
                    answers = asyncio.create_task(self._answer(client))
                    try:
                        while time.monotonic() < deadline:
                            await self._spoof(client)
                            if time.monotonic() >= next_flood:
                                await self._flood(client, flood)
                                next_flood = time.monotonic() + flood_every
                            await asyncio.sleep(0.2)
                    finally:
                        answers.cancel()
                        await asyncio.gather(answers, return_exceptions=True)
            except aiomqtt.MqttError:
                await asyncio.sleep(1)

    async def _spoof(self, client: aiomqtt.Client) -> None:
        nrg = [230, 230, 230, 0, 32, 32, 32, 11000, 11000, 11000, 0, 33000, 100, 100, 100, 0]
        for key, value in (("amp", SPOOFED_AMP), ("car", 2), ("nrg", nrg)):
            await client.publish(f"{self._other}/{key}", json.dumps(value))
        self.counts["spoofed values (other form)"] += 3

    async def _flood(self, client: aiomqtt.Client, count: int) -> None:
        junk = b'"' + b"f" * 60_000 + b'"'
        for n in range(count):
            await client.publish(f"{self._real}/zz{random.randrange(10**9)}", junk)
            await client.publish(f"{self._real}/nrg", json.dumps([n % 250] * 16))
            if n % 100 == 0:
                await asyncio.sleep(0)  # a flood, not a freeze of this soak's own loop
        self.counts["flood: unknown keys x 60 KB"] += count
        self.counts["flood: nrg"] += count

    async def _answer(self, client: aiomqtt.Client) -> None:
        async for message in client.messages:
            topic = str(message.topic)
            await client.publish(topic.removesuffix("/set") + "/result", "success")
            self.counts[f"writes answered success ({'other' if topic[0] == '/' else 'real'})"] += 1
