"""A hostile charger websocket against the bridge (issue 27, items 5-12 and 17).

The peer is written here, not in the friendly simulator: an aiohttp server on
127.0.0.1 whose /ws runs a script per connection, and whose /api serves a simulated
charger's HTTP API (the websocket's fallback). Each test runs the Bridge in this
process through a real Mosquitto and reads what it publishes.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import threading
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any

import pytest
import structlog
from aiohttp import WSMsgType, web

from goe2mqtt.catalogue import STATUS_KEYS
from goe2mqtt.config.schema import dump
from goe2mqtt.config.settings import Settings, parse_settings
from goe2mqtt.goe import websocket as websocket_module
from goe2mqtt.goe import ws_auth, ws_keys
from goe2mqtt.goe.ws_protocol import decode, encode
from goe2mqtt.goe.ws_transport import WebSocketTransport
from goe2mqtt.mqtt.topics import Topics
from goe2mqtt.sim.broker import MosquittoBroker
from goe2mqtt.sim.charger import SimulatedCharger
from goe2mqtt.sim.simulator import Simulator
from tests.conftest import TOKEN, WAIT, MqttProbe, RunningBridge, until

SERIAL = "012345"
PASSWORD = "wallbox-pw-7"

Script = Callable[["HostilePeer", web.WebSocketResponse], Awaitable[None]]


class HostilePeer:
    """A charger's address: /api as a simulated charger answers it, /ws as ``script``
    says (one run per connection)."""

    def __init__(self, script: Script, *, serial: str = SERIAL, upgrade: bool = True) -> None:
        self.charger = SimulatedCharger(serial, None)
        self.script = script
        self.upgrade = upgrade  # False: the upgrade is never answered
        self.connections = 0
        self.http_reads = 0  # /api/status calls
        self.sockets: set[web.WebSocketResponse] = set()
        self.release = asyncio.Event()  # a script may wait for the test
        self._runner: web.AppRunner | None = None
        self.host = ""

    async def start(self) -> str:
        app = web.Application()
        app.router.add_get("/api/status", self._status)
        app.router.add_get("/api/set", self._set)
        app.router.add_get("/ws", self._socket)
        self._runner = web.AppRunner(app, access_log=None, shutdown_timeout=0.5)
        await self._runner.setup()
        site = web.TCPSite(self._runner, "127.0.0.1", 0)
        await site.start()
        port = site._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]
        self.host = f"127.0.0.1:{port}"
        return self.host

    async def stop(self) -> None:
        for socket in list(self.sockets):
            await socket.close()
        if self._runner is not None:
            await self._runner.cleanup()

    async def _status(self, request: web.Request) -> web.Response:
        self.http_reads += 1
        keys = request.query.get("filter")
        return web.json_response(self.charger.status(keys.split(",") if keys else None))

    async def _set(self, request: web.Request) -> web.Response:
        _, answers = self.charger.apply_set(dict(request.query))
        return web.json_response(answers)

    async def _socket(self, request: web.Request) -> web.StreamResponse:
        if not self.upgrade:
            self.connections += 1
            await self.release.wait()
        socket = web.WebSocketResponse(max_msg_size=4 << 20, heartbeat=None)
        await socket.prepare(request)
        self.connections += 1
        self.sockets.add(socket)
        try:
            await self.script(self, socket)
        except (ConnectionError, asyncio.CancelledError):
            pass
        finally:
            self.sockets.discard(socket)
            await socket.close()
        return socket

    # --- what a script says -------------------------------------------------------------

    async def hello(self, socket: web.WebSocketResponse, **fields: Any) -> None:
        await socket.send_str(encode({
            "type": "hello", "serial": self.charger.serial, "devicetype": "go-eCharger_V4",
            "version": "56.8", "protocol": 2, "secured": False, **fields,
        }))  # fmt: skip

    async def full_status(self, socket: web.WebSocketResponse) -> None:
        await socket.send_str(
            encode({"type": "fullStatus", "partial": False, "status": self.charger.status()})
        )

    async def delta(self, socket: web.WebSocketResponse, status: dict[str, Any]) -> None:
        await socket.send_str(encode({"type": "deltaStatus", "status": status}))

    async def messages(self, socket: web.WebSocketResponse) -> AsyncIterator[dict[str, Any]]:
        async for frame in socket:
            if frame.type is WSMsgType.TEXT and (message := decode(frame.data)) is not None:
                yield message


def settings_for(broker: MosquittoBroker, host: str, **charger: Any) -> Settings:
    run = uuid.uuid4().hex[:8]
    return parse_settings({
        "mqtt": {"host": broker.host, "port": broker.port, "client_id": f"goe2mqtt-{run}",
                 "base_topic": f"goe{run}", "discovery_prefix": f"ha{run}"},
        "chargers": [{"name": "garage", "host": host, "transport": "websocket",
                      "password": PASSWORD, "scan_interval": 0.3, "timeout": 1.0, **charger}],
    })  # fmt: skip


@contextlib.asynccontextmanager
async def bridge_on(
    broker: MosquittoBroker, script: Script, *, upgrade: bool = True, **charger: Any
) -> AsyncIterator[tuple[HostilePeer, Topics, RunningBridge, MqttProbe]]:
    """The hostile peer, the bridge serving it as the garage, a probe on its topics."""
    peer = HostilePeer(script, upgrade=upgrade)
    settings = settings_for(broker, await peer.start(), **charger)
    topics = Topics(settings.mqtt.base_topic)
    running = RunningBridge(settings, info_interval=0.2)
    try:
        async with MqttProbe(broker.host, broker.port, [f"{topics.base}/#"]) as probe:
            await running.start()
            try:
                yield peer, topics, running, probe
            finally:
                peer.release.set()
                await running.stop()
    finally:
        await peer.stop()


def connection(topics: Topics) -> str:
    return topics.state("garage", "connection")


def skipped(probe: MqttProbe, topics: Topics) -> dict[str, int]:
    info = probe.latest(topics.bridge_info)
    if info is None:
        return {}
    found: dict[str, int] = info.json().get("chargers", {}).get("garage", {}).get("skipped", {})
    return found


async def wait_skipped(probe: MqttProbe, topics: Topics, reason: str, at_least: int) -> None:
    await probe.wait_for(
        topics.bridge_info,
        lambda m: m.json().get("chargers", {}).get("garage", {}).get("skipped", {})
        .get(reason, 0) >= at_least,
    )  # fmt: skip


def no_tracebacks(logs: list[dict[str, Any]]) -> None:
    bad = [e for e in logs if "exc_info" in e or e["event"].endswith("crashed")]
    assert bad == [], bad


async def forever(socket: web.WebSocketResponse) -> None:
    """Keep the connection open, saying nothing, until the client closes it."""
    async for _ in socket:
        pass


# --- item 5: a full status in parts is bounded ---------------------------------------------


def endless_parts(size: int, pause: float = 0.0) -> Script:
    """hello, then partial frames of new unknown keys (``size`` characters each, ten
    a frame), never the last one."""

    async def script(peer: HostilePeer, socket: web.WebSocketResponse) -> None:
        await peer.hello(socket)
        for n in range(100_000):
            status = {f"junk{n}_{i}": "x" * size for i in range(10)}
            await socket.send_str(encode({"type": "fullStatus", "partial": True, "status": status}))
            await asyncio.sleep(pause)

    return script


@pytest.mark.parametrize(
    ("bound", "script", "reason"),
    [
        ("parts", endless_parts(10), "a full status in more than 64 parts"),
        ("bytes", endless_parts(60_000), "a full status over 2 MiB"),  # 600 KB a frame
        ("time", endless_parts(10, 0.05), "a full status not complete within 1 s"),  # < 64
    ],
)
async def test_a_full_status_that_never_ends_ends_the_connection_with_the_reason(
    bound: str, script: Script, reason: str, broker: MosquittoBroker,
    monkeypatch: pytest.MonkeyPatch,
) -> None:  # fmt: skip
    if bound == "time":
        monkeypatch.setattr("goe2mqtt.goe.ws_parts.PARTS_WITHIN", 1.0)
    with structlog.testing.capture_logs() as logs:
        async with bridge_on(broker, script) as (peer, topics, _, probe):
            await probe.wait_text(connection(topics), f"polling (websocket: {reason})")
            # Served by polling meanwhile, and the socket is tried again later.
            await probe.wait_text(topics.availability("garage"), "online")
            await until(lambda: peer.connections >= 2, "a new connection after the backoff")
            # Only keys the bridge reads were kept from the parts: the rest counted.
            assert skipped(probe, topics).get("a key goe2mqtt does not read", 0) > 0
    down = [e for e in logs if e["event"] == "websocket_down" and e["reason"] == reason]
    assert down, [e for e in logs if e["event"] == "websocket_down"]
    no_tracebacks(logs)


async def parts_then_full(peer: HostilePeer, socket: web.WebSocketResponse) -> None:
    """Twenty parts of a thousand unknown keys each, then (when the test says) the
    charger's status as the last part."""
    await peer.hello(socket)
    for n in range(20):
        status = {f"junk{n}_{i}": i for i in range(1000)}
        await socket.send_str(encode({"type": "fullStatus", "partial": True, "status": status}))
    await peer.release.wait()
    await peer.full_status(socket)
    await forever(socket)


async def test_a_full_status_in_parts_keeps_only_the_keys_the_bridge_reads(
    broker: MosquittoBroker,
) -> None:
    async with bridge_on(broker, parts_then_full) as (peer, topics, running, probe):
        # Counted as they arrive, before the last part: nothing unknown is assembled.
        await wait_skipped(probe, topics, "a key goe2mqtt does not read", 20_000)
        peer.release.set()
        await probe.wait_text(connection(topics), "websocket")
        transport = running.bridge.chargers["garage"].transport
        assert isinstance(transport, WebSocketTransport)
        held = await transport.status(())
        assert held
        assert set(held) <= set(STATUS_KEYS)


# --- item 6: deltas with unknown keys -------------------------------------------------------


async def unknown_deltas(peer: HostilePeer, socket: web.WebSocketResponse) -> None:
    await peer.hello(socket)
    await peer.full_status(socket)
    for n in range(5):
        await peer.delta(socket, {f"unknown{n}_{i}": "y" * 100 for i in range(1000)})
    await peer.delta(socket, {"amp": 13})
    await forever(socket)


async def test_deltas_with_thousands_of_unknown_keys_are_counted_not_kept(
    broker: MosquittoBroker,
) -> None:
    with structlog.testing.capture_logs() as logs:
        async with bridge_on(broker, unknown_deltas) as (_, topics, running, probe):
            await probe.wait_text(topics.state("garage", "charging_current"), "13")
            await wait_skipped(probe, topics, "a key goe2mqtt does not read", 5000)
            transport = running.bridge.chargers["garage"].transport
            assert isinstance(transport, WebSocketTransport)
            held = await transport.status(())
            assert held["amp"] == 13
            assert set(held) <= set(STATUS_KEYS)
    logged = [e for e in logs if e["event"] == "websocket_frame_skipped"
              and e["reason"] == "a key goe2mqtt does not read"]  # fmt: skip
    assert len(logged) == 1  # once, not per key


# --- item 7: a socket that stands and says nothing ------------------------------------------


async def live_then_silent(peer: HostilePeer, socket: web.WebSocketResponse) -> None:
    """Live, then no frame at all (the TCP stays up) until released; writes are
    applied and answered, but no delta says so."""
    await peer.hello(socket)
    await peer.full_status(socket)
    released = asyncio.ensure_future(peer.release.wait())
    try:
        async for message in peer.messages(socket):
            if message.get("type") == "setValue":
                _, answers = peer.charger.apply_set({message["key"]: json.dumps(message["value"])})
                await socket.send_str(encode({
                    "type": "response", "requestId": message["requestId"],
                    "success": answers.get(message["key"]) is True,
                }))  # fmt: skip
                if released.done():
                    await peer.delta(socket, {message["key"]: message["value"]})
    finally:
        released.cancel()


async def test_a_read_back_that_sees_no_frame_asks_the_charger_over_http(
    broker: MosquittoBroker,
) -> None:
    await read_back_asks_http(broker, live_then_silent)


async def read_back_asks_http(broker: MosquittoBroker, script: Script) -> None:
    """A command's read-back while the socket shows nothing of the write: the charger is
    asked over HTTP and confirms it, not the socket's stale copy that would refute it."""
    async with bridge_on(broker, script) as (peer, topics, _, probe):
        await probe.wait_text(connection(topics), "websocket")
        await probe.wait_text(topics.state("garage", "charging_current"), "16")
        polls = peer.http_reads
        result = await probe.command(topics.command("garage", "change_charging_power"), "12")
        # Confirmed by the charger (over HTTP), not refuted by the socket's stale copy.
        assert result["ok"] is True, result
        assert peer.charger.amp == 12
        assert peer.http_reads > polls
        await probe.wait_text(topics.state("garage", "charging_current"), "12")


async def test_connection_shows_the_age_of_the_last_frame_in_coarse_steps(
    broker: MosquittoBroker, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(websocket_module, "QUIET_STEPS", (1.0, 2.0), raising=False)

    async def script(peer: HostilePeer, socket: web.WebSocketResponse) -> None:
        await peer.hello(socket)
        await peer.full_status(socket)
        await peer.release.wait()
        await peer.delta(socket, {"amp": 14})
        await forever(socket)

    async with bridge_on(broker, script) as (peer, topics, _, probe):
        mark = probe.mark()
        await probe.wait_text(connection(topics), "websocket (no frame for 2 s)", since=mark)
        shown = [m.text for m in probe.since(mark, connection(topics))]
        # One message per step, not one per second (the first may be "websocket").
        assert shown[-2:] == ["websocket (no frame for 1 s)", "websocket (no frame for 2 s)"]
        assert len(shown) <= 3, shown
        mark = probe.mark()
        peer.release.set()
        await probe.wait_text(connection(topics), "websocket", since=mark)
        await probe.wait_text(topics.state("garage", "charging_current"), "14")


# --- item 8: an answer with another request's id -------------------------------------------


async def answers_late_and_wrong(peer: HostilePeer, socket: web.WebSocketResponse) -> None:
    """Every write first gets a refusal carrying another request's id (a late answer to
    an earlier write, or one made up), then its own answer; the charger applies it."""
    await peer.hello(socket)
    await peer.full_status(socket)
    async for message in peer.messages(socket):
        if message.get("type") != "setValue":
            continue
        request_id, key, value = message["requestId"], message["key"], message["value"]
        await socket.send_str(encode({"type": "response", "requestId": request_id + 1000,
                                      "success": False, "message": "refused late"}))  # fmt: skip
        peer.charger.apply_set({key: json.dumps(value)})
        await socket.send_str(encode({"type": "response", "requestId": request_id,
                                      "success": True}))  # fmt: skip
        await peer.delta(socket, {key: value})


async def test_an_answer_with_another_requests_id_is_not_the_waiting_writes(
    broker: MosquittoBroker,
) -> None:
    async with bridge_on(broker, answers_late_and_wrong) as (peer, topics, _, probe):
        await probe.wait_text(connection(topics), "websocket")
        result = await probe.command(topics.command("garage", "change_charging_power"), "11")
        assert result["ok"] is True, result
        assert peer.charger.amp == 11
        await wait_skipped(probe, topics, "a response to another request", 1)


# --- item 9: bounded on the way to live -----------------------------------------------------


async def hello_then_deltas(peer: HostilePeer, socket: web.WebSocketResponse) -> None:
    """hello, then deltas (the silence watchdog is fed), never auth, never a full status."""
    await peer.hello(socket)
    while True:
        await peer.delta(socket, {"amp": 13})
        await asyncio.sleep(0.05)


async def test_a_peer_that_never_goes_live_is_ended_with_the_reason(
    broker: MosquittoBroker, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(websocket_module, "LIVE_WITHIN", 1.0, raising=False)
    with structlog.testing.capture_logs() as logs:
        async with bridge_on(broker, hello_then_deltas) as (peer, topics, _, probe):
            await probe.wait_text(
                connection(topics),
                "polling (websocket: not live 1 s after connecting (no full status))",
            )
            await until(lambda: peer.connections >= 2, "a new connection after the backoff")
            await probe.wait_text(topics.availability("garage"), "online")  # by polling
            assert probe.last_text(topics.state("garage", "charging_current")) == "16"
    no_tracebacks(logs)


async def test_an_upgrade_never_answered_is_bounded_and_named(
    broker: MosquittoBroker, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(websocket_module, "HANDSHAKE_WITHIN", 1.0, raising=False)
    async with bridge_on(broker, hello_then_deltas, upgrade=False) as (peer, topics, _, probe):
        await probe.wait_text(
            connection(topics), "polling (websocket: no websocket handshake within 1 s)"
        )
        await probe.wait_text(topics.availability("garage"), "online")  # by polling
        await until(lambda: peer.connections >= 2, "a new connection after the backoff")


# --- item 10: a wrong serial in any frame ---------------------------------------------------


def wrong_serial(where: str) -> Script:
    async def script(peer: HostilePeer, socket: web.WebSocketResponse) -> None:
        if where == "hello":
            await peer.hello(socket, serial="999999")
        else:
            await peer.hello(socket)
        await peer.full_status(socket)
        await peer.delta(socket, {"sse": "999999", "amp": 13})
        await forever(socket)

    return script


@pytest.mark.parametrize(
    ("where", "configured", "reason"),
    [
        ("delta", None, "answers as serial 999999, learnt earlier 012345"),
        ("delta", SERIAL, "answers as serial 999999, configured 012345"),
        ("hello", SERIAL, "says hello as serial 999999, configured 012345"),
    ],
)
async def test_a_wrong_serial_in_any_frame_is_refused_without_a_traceback(
    where: str, configured: str | None, reason: str, broker: MosquittoBroker
) -> None:
    serial = {} if configured is None else {"serial": configured}
    with structlog.testing.capture_logs() as logs:
        async with bridge_on(broker, wrong_serial(where), **serial) as (peer, topics, _, probe):
            await probe.wait_text(connection(topics), f"polling (websocket: {reason})")
            await until(lambda: peer.connections >= 2, "a new connection after the backoff")
            await probe.wait_text(topics.availability("garage"), "online")  # by polling
            # The peer's amp never reached MQTT.
            current = topics.state("garage", "charging_current")
            assert [m.text for m in probe.since(0, current)] == ["16"]
    no_tracebacks(logs)


# --- item 11: a serial no charger has -------------------------------------------------------


async def superscript_serial(peer: HostilePeer, socket: web.WebSocketResponse) -> None:
    await peer.hello(socket, serial="12\u00b2345", secured=True)
    await socket.send_str(encode({"type": "authRequired", "token1": "a", "token2": "b",
                                  "hash": "bcrypt"}))  # fmt: skip
    await forever(socket)


async def test_a_hello_serial_that_is_not_ascii_is_refused_and_backed_off(
    broker: MosquittoBroker,
) -> None:
    with structlog.testing.capture_logs() as logs:
        async with bridge_on(broker, superscript_serial) as (peer, topics, _, probe):
            await probe.wait_text(
                connection(topics),
                "polling (websocket: the hello's serial is not ASCII digits and letters)",
            )
            await until(lambda: peer.connections >= 2, "a new connection after the backoff")
    no_tracebacks(logs)


# --- item 17: the peer's words never carry the password out ---------------------------------


async def echoes_the_password(peer: HostilePeer, socket: web.WebSocketResponse) -> None:
    await peer.hello(socket, secured=True)
    await socket.send_str(encode({"type": "authRequired", "token1": "a", "token2": "b",
                                  "hash": "pbkdf2"}))  # fmt: skip
    async for message in peer.messages(socket):
        if message.get("type") == "auth":
            await socket.send_str(encode({
                "type": "authError", "message": f"Wrong password {PASSWORD}, hash "
                f"{message.get('hash')}",
            }))  # fmt: skip
            return


async def test_an_auth_error_that_echoes_the_password_is_published_redacted(
    broker: MosquittoBroker,
) -> None:
    with structlog.testing.capture_logs() as logs:
        async with bridge_on(broker, echoes_the_password) as (_, topics, _, probe):
            shown = await probe.wait_for(connection(topics), lambda m: "wrong password" in m.text)
            assert shown.text.startswith(
                "polling (websocket: wrong password: the charger refused it (Wrong password ***"
            ), shown.text
            # What the broker keeps for anyone who subscribes later, too.
            async with MqttProbe(broker.host, broker.port, [connection(topics)]) as later:
                retained = await later.wait_for(connection(topics))
            assert retained.retain
            for message in [*probe.messages, retained]:
                assert PASSWORD not in message.text, message
    assert PASSWORD not in str(logs)


# --- item 12: hashing does not hold DNS nor the broker connect ------------------------------


async def test_hashing_never_holds_dns_or_the_broker_connect(
    broker: MosquittoBroker, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A bridge whose websocket chargers are all hashing (a stand-in that blocks until
    released), and a second one in the same process, started after, whose cloud
    charger's api_url names ``localhost`` (DNS in aiohttp's threaded resolver) and
    which connects to the broker (aiomqtt's connect runs in a thread): it comes online
    while every hash still waits."""
    threads = ws_auth.HASH_THREADS  # its own (issue 27), not the default executor
    real, gate = ws_keys.hashed_password, threading.Event()
    started: list[str] = []
    finished: list[str] = []

    def stand_in(password: str, serial: str, kind: Any) -> bytes:
        started.append(serial)
        gate.wait(3 * WAIT)
        hashed = real(password, serial, kind)
        finished.append(serial)
        return hashed

    monkeypatch.setattr(ws_keys, "hashed_password", stand_in)
    serials = [f"{300000 + n:06d}" for n in range(threads + 2)]  # more than the threads
    fleet = Simulator(SimulatedCharger(s, None, password=PASSWORD) for s in serials)
    cloud = Simulator([SimulatedCharger(SERIAL, TOKEN)])
    await fleet.start()
    await cloud.start()
    hashing: RunningBridge | None = None
    polling: RunningBridge | None = None
    try:
        for serial in serials:
            await fleet.serve_local(serial)
        hashing_settings = settings_for(broker, "127.0.0.1")
        raw_fleet = [
            {**dump(hashing_settings.chargers[0], exclude_none=True),
             "name": f"ws{n}", "host": fleet.local_hosts[serial], "password": PASSWORD}
            for n, serial in enumerate(serials)
        ]  # fmt: skip
        hashing = RunningBridge(parse_settings({
            "mqtt": dump(hashing_settings.mqtt, exclude_none=True),
            "chargers": raw_fleet,
        }))  # fmt: skip
        await hashing.start()
        await until(lambda: len(started) >= threads, "every hashing thread busy")

        run = uuid.uuid4().hex[:8]
        api_url = cloud.url_for(SERIAL).replace("127.0.0.1", "localhost")
        polling = RunningBridge(parse_settings({
            "mqtt": {"host": broker.host, "port": broker.port, "client_id": f"goe2mqtt-{run}",
                     "base_topic": f"goe{run}", "discovery_prefix": f"ha{run}"},
            "chargers": [{"name": "cloudy", "serial": SERIAL, "token": TOKEN,
                          "api_url": api_url, "scan_interval": 0.3, "timeout": 2.0}],
        }))  # fmt: skip
        topics = Topics(f"goe{run}")
        async with MqttProbe(broker.host, broker.port, [f"{topics.base}/#"]) as probe:
            await polling.start()
            await probe.wait_text(topics.availability("cloudy"), "online")
        assert finished == []  # every hash still waiting: the poll did not wait behind them
        gate.set()
        chargers = hashing.bridge.chargers
        await until(lambda: all(c.pushing for c in chargers.values()), "the fleet live")
    finally:
        gate.set()
        for running in (polling, hashing):
            if running is not None:
                await running.stop()
        await fleet.stop()
        await cloud.stop()
