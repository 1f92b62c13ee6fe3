"""The simulated charger's websocket (ws://{host}/ws), as goe-push.md describes it.

hello, authRequired (pbkdf2 or bcrypt), auth, fullStatus in parts, then a deltaStatus
every ``delta_interval`` (utc and rbt change every time, as on a real charger).
setValue and securedMsg (the HMAC checked: a bad one is refused) apply through the
same checks as the HTTP API; drop_sets acknowledges a write and forgets it, as some
firmware does. The Faults' ``ws`` field plays a hostile charger.
"""

from __future__ import annotations

import asyncio
import json
import secrets
import time
from typing import Any

from aiohttp import WSMsgType, web

from goe2mqtt.goe.ws_protocol import (
    ProtocolError,
    auth_hash,
    decode,
    encode,
    hashed_password,
    unwrap_secured,
)
from goe2mqtt.sim.charger import SimulatedCharger

# Faults.ws: how the charger misbehaves on its socket.
WS_FAULTS = ("garbage", "bad_types", "silent", "big_frame", "auth_loop", "no_auth", "refuse")
BAD_TYPES = {"amp": "sixteen", "car": [1], "nrg": {"a": 1}, "wh": None, "fna": 42}
STATUS_PARTS = 3  # fullStatus comes in this many messages


class ChargerSocket:
    """Serves one charger's websocket; many connections at once, as the charger allows."""

    def __init__(self, charger: SimulatedCharger, delta_interval: float = 1.0) -> None:
        self.charger = charger
        self.delta_interval = delta_interval
        self.open: set[web.WebSocketResponse] = set()
        self.connections = 0  # every connection accepted
        self.most_open = 0  # the most open at once: a polite client keeps one
        self.refused_writes: list[str] = []  # why each refused write was refused
        self._hashed: bytes | None = None

    async def handle(self, request: web.Request) -> web.StreamResponse:
        charger = self.charger
        if charger.faults.ws == "refuse":
            return web.Response(status=503, text="websocket refused (simulated)")
        socket = web.WebSocketResponse(max_msg_size=1 << 20, heartbeat=None)
        await socket.prepare(request)
        self.connections += 1
        self.open.add(socket)
        self.most_open = max(self.most_open, len(self.open))
        try:
            await self._converse(socket)
        except (ConnectionError, asyncio.CancelledError):
            pass
        finally:
            self.open.discard(socket)
            if not socket.closed:
                await socket.close()
        return socket

    async def close_all(self) -> int:
        """Close every open socket (a charger restarting its network); how many."""
        sockets = list(self.open)
        for socket in sockets:
            await socket.close()
        return len(sockets)

    async def _converse(self, socket: web.WebSocketResponse) -> None:
        charger = self.charger
        await socket.send_str(encode(self._hello()))
        fault = charger.faults.ws
        if fault == "no_auth":
            await asyncio.sleep(3600)  # hello, then nothing: the bridge must give up
        if charger.password is not None and not await self._authenticate(socket):
            return
        status = charger.status()
        await self._send_full(socket, status)
        last = dict(status)
        hostile_once = True
        reader = asyncio.create_task(self._read(socket))
        try:
            while not reader.done():
                done, _ = await asyncio.wait({reader}, timeout=self.delta_interval)
                if done:
                    break
                if charger.faults.ws == "silent":
                    continue
                now = charger.status()
                delta = {k: v for k, v in now.items() if last.get(k, _NONE) != v}
                delta["utc"] = time.strftime("%Y-%m-%dT%H:%M:%S.000", time.gmtime())
                last = now
                if hostile_once and charger.faults.ws == "bad_types":
                    # Wrong types once; the next delta says the truth again, as a
                    # charger's next change of those keys would.
                    hostile_once = False
                    await socket.send_str(encode({"type": "deltaStatus", "status": BAD_TYPES}))
                    last = {k: v for k, v in last.items() if k not in BAD_TYPES}
                    continue
                await self._hostile(socket)
                await socket.send_str(encode({"type": "deltaStatus", "status": delta}))
        finally:
            reader.cancel()

    def _hello(self) -> dict[str, Any]:
        charger = self.charger
        return {
            "type": "hello",
            "serial": charger.serial,
            "hostname": f"go-eCharger-{charger.serial}",
            "friendly_name": charger.friendly_name,
            "manufacturer": "go-e",
            "devicefamily": "goecharger",
            "devicetype": "go-eCharger_V4",
            "devicesubtype": "simulated",
            "version": charger.firmware,
            "protocol": 2,
            "secured": charger.password is not None,
        }

    async def _authenticate(self, socket: web.WebSocketResponse) -> bool:
        charger = self.charger
        assert charger.password is not None
        if self._hashed is None:
            self._hashed = await asyncio.to_thread(
                hashed_password, charger.password, charger.serial, charger.hash_kind
            )
        rounds = 50 if charger.faults.ws == "auth_loop" else 1
        for _ in range(rounds):
            token1, token2 = secrets.token_hex(16), secrets.token_hex(16)
            await socket.send_str(encode({
                "type": "authRequired", "token1": token1, "token2": token2,
                "hash": charger.hash_kind,
            }))  # fmt: skip
            answer = await _next_message(socket)
            if answer is None or answer.get("type") != "auth":
                return False
            token3 = answer.get("token3")
            proof = auth_hash(token1, token2, str(token3), self._hashed)
            if not isinstance(token3, str) or answer.get("hash") != proof:
                await socket.send_str(encode({"type": "authError", "message": "Wrong password"}))
                return False
        if charger.faults.ws == "auth_loop":
            return False
        await socket.send_str(encode({"type": "authSuccess"}))
        return True

    async def _send_full(self, socket: web.WebSocketResponse, status: dict[str, Any]) -> None:
        items = list(status.items())
        size = -(-len(items) // STATUS_PARTS)
        for part in range(STATUS_PARTS):
            chunk = dict(items[part * size : (part + 1) * size])
            last = part == STATUS_PARTS - 1
            await socket.send_str(
                encode({"type": "fullStatus", "partial": not last, "status": chunk})
            )

    async def _hostile(self, socket: web.WebSocketResponse) -> None:
        fault = self.charger.faults.ws
        if fault == "garbage":
            await socket.send_str("<html>not json</html>")
            await socket.send_bytes(b"\x00\x81\xa4type\xa5hello")  # MessagePack-ish
            await socket.send_str(encode({"type": "firmwareUpdate", "progress": 3}))
            await socket.send_str('{"type": "deltaStatus", "status": [1, 2]}')
            await socket.send_str("[" * 100_000)
        elif fault == "big_frame":
            await socket.send_str(encode({"type": "deltaStatus", "status": {"x": "y" * (2 << 20)}}))

    async def _read(self, socket: web.WebSocketResponse) -> None:
        while True:
            message = await _next_message(socket)
            if message is None:
                return
            if message.get("type") in ("setValue", "securedMsg"):
                await socket.send_str(encode(self._write(message)))

    def _write(self, message: dict[str, Any]) -> dict[str, Any]:
        charger = self.charger
        request_id = message.get("requestId")
        try:
            if message["type"] == "securedMsg":
                assert self._hashed is not None
                message = unwrap_secured(message, self._hashed)
            elif charger.password is not None:
                raise ProtocolError("setValue without securedMsg on a secured charger")
        except (ProtocolError, AssertionError) as exc:
            self.refused_writes.append(str(exc))
            return {"type": "response", "requestId": request_id, "success": False,
                    "message": str(exc)}  # fmt: skip
        request_id = message.get("requestId", request_id)
        key, value = message.get("key"), message.get("value")
        if not isinstance(key, str):
            return {"type": "response", "requestId": request_id, "success": False,
                    "message": "no key"}  # fmt: skip
        charger.set_requests += 1
        faults = charger.faults
        if faults.reject_sets:
            return {"type": "response", "requestId": request_id, "success": False,
                    "message": "rejected (simulated)"}  # fmt: skip
        if faults.drop_sets:
            charger.dropped_sets.append({key: value})
            return {"type": "response", "requestId": request_id, "success": True,
                    "status": {key: value}}  # fmt: skip
        _, answers = charger.apply_set({key: json.dumps(value)})
        ok = answers.get(key) is True
        answer: dict[str, Any] = {"type": "response", "requestId": request_id, "success": ok}
        if ok:
            answer["status"] = {key: value}
        else:
            answer["message"] = str(answers.get(key))
        return answer


_NONE = object()


async def _next_message(socket: web.WebSocketResponse) -> dict[str, Any] | None:
    """The next JSON message from the client; None when it closed."""
    while True:
        frame = await socket.receive()
        if frame.type is WSMsgType.TEXT:
            message = decode(frame.data)
            if message is not None:
                return message
        elif frame.type in (WSMsgType.CLOSE, WSMsgType.CLOSING, WSMsgType.CLOSED,
                            WSMsgType.ERROR):  # fmt: skip
            return None
