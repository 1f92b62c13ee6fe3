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
import json
import socket
import time
from collections.abc import Callable, Iterable, Mapping
from dataclasses import asdict, dataclass, field
from typing import Any

from aiohttp import web

VOLTAGES = (230.2, 229.8, 231.1)


@dataclass
class Faults:
    """What goes wrong for one charger; tests and the soak script flip these."""

    http_status: int | None = None  # answer with this status (403, 404, 500, ...)
    delay: float = 0.0  # seconds before answering: drives client timeouts
    garbage: bool = False  # 200 with a body that is not JSON
    success_false: bool = False  # 200 with {"success": false}
    body: str | None = None  # 200 with exactly this text (truncated JSON, huge answers)
    only: str | None = None  # "status" or "set": the faults above hit only that call
    times: int | None = None  # the faults above heal after this many hits
    retry_after: str | None = None  # Retry-After header sent with http_status (429, 503)
    reason: str | None = None  # the "reason" in the body of an http_status answer
    reject_sets: bool = False  # 422 on every set
    drop_sets: bool = False  # 202 on a set, but the charger never applies it
    values: dict[str, Any] = field(default_factory=dict)  # status values replaced by these
    missing: list[str] = field(default_factory=list)  # status keys left out

    def hits(self, call: str) -> bool:
        """Whether a transport fault strikes this call (and count it)."""
        if self.only is not None and self.only != call:
            return False
        configured = (
            self.http_status is not None
            or self.delay > 0
            or self.garbage
            or self.success_false
            or self.body is not None
        )
        if not configured or (self.times is not None and self.times <= 0):
            return False
        if self.times is not None:
            self.times -= 1
        return True


@dataclass
class SimulatedCharger:
    serial: str
    token: str | None = None  # None: no auth (the local API flavour)
    friendly_name: str | None = None
    clock: Callable[[], float] = time.monotonic

    # the car
    plugged: bool = False
    car_full: bool = False
    error_code: int = 0
    # settings the API writes
    amp: int = 16
    mca: int = 6
    ama: int = 32
    frc: int = 0
    psm: int = 0
    acs: int = 0
    trx: int | None = None
    # counters
    wh: float = 0.0
    eto: float = 1_234_567.0
    firmware: str = "60.4"
    model: str = "go-eCharger_V4"

    faults: Faults = field(default_factory=Faults)
    set_calls: list[dict[str, Any]] = field(default_factory=list)  # sets that reached it
    dropped_sets: list[dict[str, Any]] = field(default_factory=list)  # 202 but lost
    set_requests: int = 0  # every /api/set request, faulty or not
    status_calls: int = 0
    _advanced_at: float | None = None

    def __post_init__(self) -> None:
        if self.friendly_name is None:
            self.friendly_name = f"go-e {self.serial}"

    # --- the car's life ---------------------------------------------------------------

    def plug_in(self, *, auth_required: bool = False) -> None:
        self._advance()
        self.plugged, self.car_full, self.wh = True, False, 0.0
        if auth_required:
            self.acs, self.trx = 1, None

    def unplug(self) -> None:
        self._advance()
        self.plugged, self.trx = False, None
        if self.frc == 2:
            self.frc = 0  # a forced start ends with the session, as on the real charger

    @property
    def car(self) -> int:
        if self.error_code:
            return 5
        if not self.plugged:
            return 1
        if self.acs == 1 and self.trx is None:
            return 3
        if self.frc == 1 or (self.frc == 0 and self.car_full):
            return 4
        return 2

    @property
    def active_phases(self) -> int:
        return 1 if self.psm == 1 else 3

    def currents(self) -> list[float]:
        if self.car != 2:
            return [0.0, 0.0, 0.0]
        return [float(self.amp) if n < self.active_phases else 0.0 for n in range(3)]

    def power(self) -> float:
        return sum(u * i for u, i in zip(VOLTAGES, self.currents(), strict=True))

    def _advance(self) -> None:
        """Count energy for the time since the last look (lazy: costs nothing while unseen)."""
        now = self.clock()
        if self._advanced_at is not None:
            energy = self.power() * (now - self._advanced_at) / 3600.0
            self.wh += energy
            self.eto += energy
        self._advanced_at = now

    def _model_status(self) -> int:
        car = self.car
        if car == 3:
            return 2
        if self.frc == 1:
            return 4
        if car == 2 and self.frc == 2:
            return 3
        return 15

    # --- the API ----------------------------------------------------------------------

    def status(self, keys: Iterable[str] | None = None) -> dict[str, Any]:
        self._advance()
        currents = self.currents()
        powers = [round(u * i, 1) for u, i in zip(VOLTAGES, currents, strict=True)]
        full: dict[str, Any] = {
            "car": self.car,
            "alw": self.car == 2,
            "amp": self.amp,
            "mca": self.mca,
            "ama": self.ama,
            "wh": round(self.wh, 3),
            "eto": int(self.eto),
            "psm": self.psm,
            "pnp": 3,
            "acs": self.acs,
            "frc": self.frc,
            "trx": self.trx,
            "err": self.error_code,
            "modelStatus": self._model_status(),
            "fna": self.friendly_name,
            "nrg": [
                *VOLTAGES,
                0.0,
                *currents,
                *powers,
                0.0,
                round(sum(powers), 1),
                100,
                100,
                100,
                0,
            ],
            "tma": [24.5, 26.0],
            "rssi": -61,
            "lmo": 3,
            "fwv": self.firmware,
            "sse": self.serial,
            "typ": self.model,
        }
        if keys is None:
            return full
        wanted = set(keys)
        return {k: v for k, v in full.items() if k in wanted}

    def apply_set(self, raw: Mapping[str, str]) -> tuple[int, dict[str, Any]]:
        """Apply JSON-encoded values; (HTTP status, per-key answer) as the cloud gives them."""
        self._advance()
        answers: dict[str, Any] = {}
        decoded: dict[str, Any] = {}
        for key, text in raw.items():
            try:
                value = json.loads(text)
            except ValueError:
                decoded[key] = text
                answers[key] = "value is not JSON"
                continue
            decoded[key] = value
            problem = self._check(key, value)
            answers[key] = problem or True
            if problem is None:
                setattr(self, _SETTABLE[key], value)
        self.set_calls.append(decoded)
        accepted = any(answer is True for answer in answers.values())
        return (202 if accepted else 422), answers

    def _check(self, key: str, value: Any) -> str | None:
        if key not in _SETTABLE:
            return "unknown or read-only key"
        if key == "fna":
            return None if isinstance(value, str) and len(value) <= 32 else "expected a string"
        if key == "trx":
            ok = value is None or (_is_int(value) and 0 <= value <= 10)
            return None if ok else "expected null or a card index"
        if not _is_int(value):
            return "expected an integer"
        low, high = {"amp": (self.mca, self.ama), "acs": (0, 2)}.get(key, (0, 2))
        return None if low <= value <= high else f"out of range {low}..{high}"


_SETTABLE = {
    "amp": "amp",
    "frc": "frc",
    "psm": "psm",
    "acs": "acs",
    "trx": "trx",
    "fna": "friendly_name",
}


def _is_int(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


class Simulator:
    """The HTTP side: routes requests to SimulatedChargers and applies their faults."""

    def __init__(self, chargers: Iterable[SimulatedCharger]) -> None:
        self.chargers = {c.serial: c for c in chargers}
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
        app.router.add_get("/api/{call}", self._api)
        app.router.add_get("/_sim/{serial}", self._inspect)
        app.router.add_post("/_sim/{serial}", self._control)
        return app

    async def start(self, host: str = "127.0.0.1", port: int = 0) -> str:
        self._runner, address = await _serve(self.app(), host, port)
        self.base_url = f"http://{address}"
        return self.base_url

    async def serve_local(self, serial: str, host: str = "127.0.0.1", port: int = 0) -> str:
        """Give one charger a local HTTP API v2 of its own, as on its own IP; its host:port."""
        charger = self.chargers[serial]

        async def local_api(request: web.Request) -> web.Response:
            return await self._answer(charger, request.match_info["call"], request, local=True)

        app = web.Application()
        app.router.add_get("/api/{call}", local_api)
        runner, address = await _serve(app, host, port)
        self._local_runners.append(runner)
        self.local_hosts[serial] = address
        return address

    async def stop(self) -> None:
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
            answer = charger.status(keys.split(",") if keys else None)
            answer.update({k: v for k, v in faults.values.items() if k in answer or not keys})
            for key in faults.missing:
                answer.pop(key, None)
            return _json(200, answer)
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
        """Drive a charger from outside: {"plug": true, "auth_required": false, "faults": {..}}."""
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
            if "car_full" in body:
                charger.car_full = bool(body["car_full"])
            if "error" in body:
                charger.error_code = int(body["error"])
            if "faults" in body:
                charger.faults = Faults(**body["faults"])
        except (ValueError, TypeError):
            return _json(400, {"error": "expected a JSON object with plug/car_full/error/faults"})
        return _json(200, {"status": charger.status()})


async def _serve(app: web.Application, host: str, port: int) -> tuple[web.AppRunner, str]:
    # Handlers held by a "hanging" fault must not hold up a stop for a minute.
    runner = web.AppRunner(app, access_log=None, shutdown_timeout=1.0)
    await runner.setup()
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    sock = socket.create_server((host, port), family=family)
    await web.SockSite(runner, sock).start()
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
