"""A simulated go-e cloud: one aiohttp server on loopback serving many chargers.

It speaks the API v2 the way goe-api.md describes it (status with filter, set
with JSON-encoded values, Bearer or ?token= auth, 202/401/403/404/422) and keeps
state, so a set really changes what the next status returns. The demo and the
tests both drive it; faults can be switched on per charger.

Charger URLs: ``{server}/{serial}`` (path routing, what tests and the demo use),
or the bare server with ``Host: {serial}.api.v3.go-e.io`` (cloud-style routing).
"""

from __future__ import annotations

import asyncio
import socket
import ssl
from collections.abc import Callable, Iterable
from dataclasses import asdict
from typing import Any

from aiohttp import web

from goe2mqtt.sim.charger import MODELS, Faults, SimulatedCharger
from goe2mqtt.sim.websocket import ChargerSocket

__all__ = ["MODELS", "Faults", "SimulatedCharger", "Simulator"]


class Simulator:
    """The HTTP side: routes requests to SimulatedChargers and applies their faults."""

    def __init__(
        self, chargers: Iterable[SimulatedCharger], *, delta_interval: float = 1.0
    ) -> None:
        self.chargers = {c.serial: c for c in chargers}
        # Each charger's websocket (local /ws, or {server}/{serial}/ws as its cloud one).
        self.sockets = {
            serial: ChargerSocket(c, delta_interval) for serial, c in self.chargers.items()
        }
        self._runner: web.AppRunner | None = None
        self._local_runners: list[web.AppRunner] = []
        self.base_url = ""
        self.local_hosts: dict[str, str] = {}  # serial -> host:port of its local API
        # Called with (serial, "status" | "set") as each request arrives: benchmarks
        # time polls and commands with it.
        self.observers: list[Callable[[str, str], None]] = []

    def charger(self, serial: str) -> SimulatedCharger:
        return self.chargers[serial]

    def url_for(self, serial: str) -> str:
        return f"{self.base_url}/{serial}"

    def app(self) -> web.Application:
        app = web.Application()
        app.router.add_get("/{serial:[0-9]{6}}/api/{call}", self._api)
        app.router.add_get("/{serial:[0-9]{6}}/ws", self._cloud_socket)
        app.router.add_get("/api/{call}", self._api)
        app.router.add_get("/_sim/{serial}", self._inspect)
        app.router.add_post("/_sim/{serial}", self._control)
        return app

    async def start(
        self, host: str = "127.0.0.1", port: int = 0, ssl_context: ssl.SSLContext | None = None
    ) -> str:
        """Serve; with ssl_context over TLS (one certificate for every charger's host)."""
        self._runner, address = await _serve(self.app(), host, port, ssl_context)
        self.base_url = f"{'https' if ssl_context else 'http'}://{address}"
        return self.base_url

    async def serve_local(self, serial: str, host: str = "127.0.0.1", port: int = 0) -> str:
        """Give one charger a local HTTP API v2 of its own, as on its own IP; its host:port."""
        charger = self.chargers[serial]

        async def local_api(request: web.Request) -> web.Response:
            return await self._answer(charger, request.match_info["call"], request, local=True)

        app = web.Application()
        app.router.add_get("/api/{call}", local_api)
        app.router.add_get("/ws", self.sockets[serial].handle)
        runner, address = await _serve(app, host, port)
        self._local_runners.append(runner)
        self.local_hosts[serial] = address
        return address

    def drop_connections(self) -> int:
        """Close every open client connection at once, as a server's own idle timeout
        does with kept-alive ones (the bridge keeps them 15 min); how many."""
        dropped = 0
        for runner in (self._runner, *self._local_runners):
            server = runner.server if runner is not None else None
            for handler in server.connections if server is not None else ():
                handler.force_close()
                dropped += 1
        return dropped

    async def close_sockets(self) -> int:
        """Close every charger's open websockets at once; how many."""
        return sum([await socket.close_all() for socket in self.sockets.values()])

    async def stop(self) -> None:
        await self.close_sockets()
        for runner in self._local_runners:
            await runner.cleanup()
        self._local_runners.clear()
        if self._runner is not None:
            await self._runner.cleanup()
            self._runner = None

    def _find(self, request: web.Request) -> SimulatedCharger | None:
        serial = request.match_info.get("serial") or request.host.split(".", 1)[0]
        return self.chargers.get(serial)

    async def _api(self, request: web.Request) -> web.Response:
        charger = self._find(request)
        if charger is None:
            return _json(403, {"success": False, "reason": "unknown charger"})
        return await self._answer(charger, request.match_info["call"], request, local=False)

    async def _cloud_socket(self, request: web.Request) -> web.StreamResponse:
        charger = self._find(request)
        if charger is None:
            return _json(403, {"success": False, "reason": "unknown charger"})
        if charger.token is not None and _token_of(request) != charger.token:
            return _json(401, {"success": False, "reason": "wrong token"})
        return await self.sockets[charger.serial].handle(request)

    async def _answer(
        self, charger: SimulatedCharger, call: str, request: web.Request, *, local: bool
    ) -> web.Response:
        if call not in ("status", "set"):
            return _json(404, {"success": False, "reason": "no such call"})
        for observer in self.observers:
            observer(charger.serial, call)
        if not local and charger.token is not None and _token_of(request) != charger.token:
            return _json(401, {"success": False, "reason": "wrong token"})
        faults = charger.faults
        if call == "set":
            charger.set_requests += 1
        if faults.hits(call):
            if faults.delay:
                await asyncio.sleep(faults.delay)
            if faults.http_status is not None:
                body = _fault_body(faults.http_status)
                if faults.reason is not None:
                    body["reason"] = faults.reason
                response = _json(faults.http_status, body)
                if faults.retry_after is not None:
                    response.headers["Retry-After"] = faults.retry_after
                return response
            if faults.garbage:
                return web.Response(status=200, text="<html>502 Bad Gateway</html>")
            if faults.body is not None:
                return web.Response(status=200, text=faults.body, content_type="application/json")
            if faults.success_false:
                return _json(200, {"success": False, "reason": "simulated failure"})
        if call == "status":
            charger.status_calls += 1
            keys = request.query.get("filter")
            charger.last_filter = keys
            return _json(200, charger.status(keys.split(",") if keys else None))
        values = {k: v for k, v in request.query.items() if k != "token"}
        if faults.reject_sets:
            charger.set_calls.append(dict(values))
            return _json(500 if local else 422, {k: "rejected (simulated)" for k in values})
        if faults.drop_sets:
            charger.dropped_sets.append(dict(values))
            return _json(200 if local else 202, {k: True for k in values})
        status, answers = charger.apply_set(values)
        if local:
            # The local API says 200, or 500 as soon as one key was refused.
            status = 200 if all(a is True for a in answers.values()) else 500
        return _json(status, answers)

    async def _inspect(self, request: web.Request) -> web.Response:
        charger = self.chargers.get(request.match_info["serial"])
        if charger is None:
            return _json(404, {"error": "unknown charger"})
        return _json(
            200,
            {
                "status": charger.status(),
                "faults": asdict(charger.faults),
                "set_calls": charger.set_calls,
            },
        )

    async def _control(self, request: web.Request) -> web.Response:
        """Drive a charger from outside: {"plug": true, "auth_required": false,
        "deliver_wh": 500, "faults": {..}}."""
        charger = self.chargers.get(request.match_info["serial"])
        if charger is None:
            return _json(404, {"error": "unknown charger"})
        try:
            body = await request.json()
            if not isinstance(body, dict):
                raise ValueError
            if "plug" in body:
                if body["plug"]:
                    charger.plug_in(auth_required=bool(body.get("auth_required", False)))
                else:
                    charger.unplug()
            if "deliver_wh" in body:
                charger.deliver(float(body["deliver_wh"]))
            if "car_full" in body:
                charger.car_full = bool(body["car_full"])
            if "error" in body:
                charger.error_code = int(body["error"])
            if "faults" in body:
                charger.faults = Faults(**body["faults"])
        except (ValueError, TypeError):
            problem = "expected a JSON object with plug/deliver_wh/car_full/error/faults"
            return _json(400, {"error": problem})
        return _json(200, {"status": charger.status()})


async def _serve(
    app: web.Application, host: str, port: int, ssl_context: ssl.SSLContext | None = None
) -> tuple[web.AppRunner, str]:
    # Handlers held by a "hanging" fault must not hold up a stop for a minute.
    runner = web.AppRunner(app, access_log=None, shutdown_timeout=1.0)
    await runner.setup()
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    sock = socket.create_server((host, port), family=family)
    await web.SockSite(runner, sock, ssl_context=ssl_context).start()
    bound_port = sock.getsockname()[1]
    return runner, (f"[{host}]:{bound_port}" if ":" in host else f"{host}:{bound_port}")


def _token_of(request: web.Request) -> str | None:
    header = request.headers.get("Authorization", "")
    if header.startswith("Bearer "):
        return header[len("Bearer ") :]
    return request.query.get("token")


def _fault_body(status: int) -> dict[str, Any]:
    if status == 404:
        return {"success": False, "reason": "Data is outdated", "age": 3600}
    if status == 403:
        return {"success": False, "reason": "charger offline"}
    return {"success": False, "reason": f"simulated HTTP {status}"}


def _json(status: int, body: Any) -> web.Response:
    return web.json_response(body, status=status)
