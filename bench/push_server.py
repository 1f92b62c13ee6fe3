"""bench/push.py's chargers: N websockets on one port ({server}/{serial}/ws), each
authenticating the bridge and sending a delta a second, CHANGES_PER_SECOND of them a
change the benchmark times. bench/charger_memory.py and bench/push_restart.py serve
their chargers with it too."""

from __future__ import annotations

import asyncio
import json
import random
import time
import uuid

from aiohttp import WSMsgType, web

from goe2mqtt.goe.ws_protocol import encode
from goe2mqtt.sim.charger import SimulatedCharger

CHANGES_PER_SECOND = 5  # chargers whose delta a second is a change (timed)
SLICES = 10  # the second's deltas go out in this many steps


def serials(n: int) -> list[str]:
    return [f"{200000 + i:06d}" for i in range(n)]


class PushServer:
    """N chargers' websockets on one port ({server}/{serial}/ws), deltas every second."""

    def __init__(self, chargers: list[str], hash_kind: str = "bcrypt") -> None:
        self.template = SimulatedCharger(chargers[0]).status()
        self.hash_kind = hash_kind  # what authRequired asks for (the proof is not checked)
        self.connects = 0  # websocket connections accepted
        self.authenticated: set[str] = set()  # chargers that sent their auth
        self.full_status_at: dict[str, float] = {}  # unix time each last sent its full status
        self.open: dict[str, web.WebSocketResponse] = {}
        self.amp = dict.fromkeys(chargers, 16)
        self.slice_of = {serial: i % SLICES for i, serial in enumerate(chargers)}
        self.sent_at: dict[tuple[str, int], float] = {}  # (serial, amp) -> when sent
        self.deltas = 0
        self.timing = True  # False: changes are sent, not timed
        self.runner: web.AppRunner | None = None
        self.port = 0

    async def start(self) -> None:
        app = web.Application()
        app.router.add_get("/{serial}/ws", self.handle)
        app.router.add_get("/{serial}/api/status", self.status)  # the fallback, until live
        self.runner = web.AppRunner(app, access_log=None, shutdown_timeout=1.0)
        await self.runner.setup()
        site = web.TCPSite(self.runner, "127.0.0.1", 0, backlog=4096)
        await site.start()
        self.port = site._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]

    async def status(self, request: web.Request) -> web.Response:
        serial = request.match_info["serial"]
        return web.json_response({**self.template, "sse": serial, "amp": self.amp[serial]})

    async def handle(self, request: web.Request) -> web.WebSocketResponse:
        serial = request.match_info["serial"]
        socket = web.WebSocketResponse(heartbeat=None)
        await socket.prepare(request)
        self.connects += 1
        await socket.send_str(
            encode(
                {
                    "type": "hello",
                    "serial": serial,
                    "secured": True,
                    "devicetype": "go-eCharger_V4",
                    "version": "60.4",
                }
            )
        )
        await socket.send_str(
            encode(
                {
                    "type": "authRequired",
                    "token1": uuid.uuid4().hex,
                    "token2": uuid.uuid4().hex,
                    "hash": self.hash_kind,
                }
            )
        )
        async for frame in socket:
            if frame.type is not WSMsgType.TEXT:
                continue
            message = json.loads(frame.data)
            if message.get("type") == "auth":
                await socket.send_str(encode({"type": "authSuccess"}))
                status = {**self.template, "sse": serial, "amp": self.amp[serial]}
                await socket.send_str(
                    encode({"type": "fullStatus", "partial": False, "status": status})
                )
                self.open[serial] = socket
                self.authenticated.add(serial)
                self.full_status_at[serial] = time.time()
        self.open.pop(serial, None)
        return socket

    async def tick_forever(self) -> None:
        """A delta a second per charger, spread over the second in tenths: real chargers'
        seconds are not aligned, and a burst of every charger at once would measure the
        burst (at 10 000: half a second of queue) instead of the bridge."""
        loop = asyncio.get_running_loop()
        due = loop.time()
        changing: set[str] = set()
        while True:
            for tenth in range(SLICES):
                due += 1.0 / SLICES
                await asyncio.sleep(max(0.0, due - loop.time()))
                if tenth == 0:
                    changing = set(
                        random.sample(list(self.open), min(CHANGES_PER_SECOND, len(self.open)))
                    )
                now = time.time()
                common = encode({"type": "deltaStatus", "status": {
                    "utc": time.strftime("%Y-%m-%dT%H:%M:%S.000", time.gmtime(now)),
                    "rbt": int(now * 1000) % 10**9}})  # fmt: skip
                for serial, socket in list(self.open.items()):
                    if self.slice_of[serial] != tenth:
                        continue
                    if serial in changing:
                        amp = 6 + (self.amp[serial] - 5) % 26
                        self.amp[serial] = amp
                        if self.timing:
                            self.sent_at[(serial, amp)] = time.monotonic()
                        frame = encode({"type": "deltaStatus", "status": {"amp": amp}})
                    else:
                        frame = common
                    try:
                        await socket.send_str(frame)
                        self.deltas += 1
                    except ConnectionError:
                        self.open.pop(serial, None)
