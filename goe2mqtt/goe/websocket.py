"""One charger's websocket (local ws://{host}/ws, or the cloud's, experimental).

The link keeps one connection open - never more: the go-e app shares the socket -
authenticates with the hashed password (computed once, in a thread), merges the
fullStatus parts and hands each message's values to its listener. It reconnects with
backoff and jitter, takes 50 s of silence for a dead socket (the charger sends a
delta every second), and reads nothing it cannot trust: non-JSON, binary frames,
unknown types and frames over 1 MiB are counted and skipped, never raised.
"""

from __future__ import annotations

import asyncio
import random
import time
from collections.abc import Awaitable, Callable, Mapping
from typing import Any

import aiohttp
import structlog

from goe2mqtt.goe.client import GoeError, Rejected, TransientError
from goe2mqtt.goe.ws_protocol import (
    HashKind,
    ProtocolError,
    auth_message,
    decode,
    encode,
    hash_kind,
    hashed_password,
    secured,
    set_value,
    succeeded,
)
from goe2mqtt.util.logs import SkipCount
from goe2mqtt.util.text import printable
from goe2mqtt.util.values import JsonValue

log = structlog.get_logger()

SILENCE = 50.0  # seconds without a frame: the socket is dead (deltas come every second)
MAX_FRAME = 1 << 20
ANSWER_TIMEOUT = 10.0  # a setValue's response
MAX_BACKOFF = 60.0
WRONG_PASSWORD_BACKOFF = 300.0  # a password is changed in the app, not in seconds
MAX_AUTH_ROUNDS = 3  # authRequired again and again: a loop, not a charger

# (message values, full) -> None: full replaces the status, else values are a delta.
Listener = Callable[[Mapping[str, Any], bool], Awaitable[None]]
StateListener = Callable[[], None]


class WrongPassword(GoeError):
    """The charger said authError: the configured password is not its password."""


class LinkDown(TransientError):
    """The socket is not open: nothing was sent."""


class WebSocketLink:
    """The connection to one charger's websocket, kept open by run()."""

    def __init__(
        self,
        session: aiohttp.ClientSession,
        url: str,
        password: str,
        *,
        name: str,
        headers: Mapping[str, str] | None = None,
        silence: float = SILENCE,
        answer_timeout: float = ANSWER_TIMEOUT,
    ) -> None:
        self._session = session
        self.url = url
        self._password = password
        self._name = name
        self._headers = dict(headers or {})
        self._silence = silence
        self._answer_timeout = answer_timeout
        self._socket: aiohttp.ClientWebSocketResponse | None = None
        self._hashes: dict[tuple[str, HashKind], bytes] = {}  # (serial, kind) -> hashed
        self._hashed: bytes | None = None  # this connection's, for secured writes
        self._secured = False
        self._request_id = 0
        self._answers: dict[int, asyncio.Future[Mapping[str, Any]]] = {}
        self._write_lock = asyncio.Lock()  # one write at a time: answers may lack the id
        self.live = False  # authenticated and the full status known
        self.reason = "not connected yet"  # why it is not live
        self.hello: dict[str, Any] = {}
        self.skipped = SkipCount("websocket_frame_skipped", charger=name)
        self.connects = 0
        self._on_state: StateListener = lambda: None
        self._heard_at = 0.0  # loop time of the last frame
        self._went_silent = False
        self._watchdog: asyncio.TimerHandle | None = None
        self._closing: set[asyncio.Future[Any]] = set()

    # --- the connection --------------------------------------------------------------

    async def run(self, listener: Listener, on_state: StateListener = lambda: None) -> None:
        """Keep the socket open until cancelled; hand every status to the listener."""
        self._on_state = on_state
        failures = 0
        while True:
            started = time.monotonic()
            try:
                await self._connect_once(listener)
                self._down(
                    f"no message for {self._silence:.0f} s" if self._went_silent
                    else "closed by the charger"
                )  # fmt: skip
            except WrongPassword as exc:
                self._down(str(exc))
            except (GoeError, ProtocolError) as exc:
                self._down(str(exc))
            except TimeoutError:
                self._down("timed out connecting")
            except aiohttp.ClientResponseError as exc:
                self._down(f"refused ({exc.status})")
            except (aiohttp.ClientError, OSError) as exc:
                self._down(f"connection failed: {type(exc).__name__}")
            except Exception as exc:  # a bug must not end the charger's socket for good
                log.exception("websocket_crashed", charger=self._name)
                self._down(f"internal error: {type(exc).__name__}")
            if time.monotonic() - started > 2 * MAX_BACKOFF:
                failures = 0  # it lived a while: start the backoff anew
            failures += 1
            wait = min(MAX_BACKOFF, 2 ** min(failures - 1, 6))
            if self.reason.startswith("wrong password"):
                wait = WRONG_PASSWORD_BACKOFF
            # Jitter: a fleet that lost its sockets together must not return together.
            await asyncio.sleep(wait * random.uniform(0.5, 1.0))

    def _down(self, reason: str) -> None:
        was_live, self.live = self.live, False
        if reason != self.reason or was_live:
            level = log.error if reason.startswith("wrong password") else log.warning
            level("websocket_down", charger=self._name, reason=reason)
        self.reason = reason
        for answer in self._answers.values():
            if not answer.done():
                answer.set_exception(LinkDown(f"websocket closed: {reason}"))
        self._answers.clear()
        self._on_state()

    async def _connect_once(self, listener: Listener) -> None:
        async with self._session.ws_connect(
            self.url,
            headers=self._headers,
            max_msg_size=MAX_FRAME,
            autoping=True,
            timeout=aiohttp.ClientWSTimeout(ws_close=1.0),  # a stop must not wait on the charger
        ) as socket:
            self.connects += 1
            self._socket = socket
            try:
                await self._converse(socket, listener)
            finally:
                self._socket = None

    async def _converse(self, socket: aiohttp.ClientWebSocketResponse, listener: Listener) -> None:
        # Silence is watched by one timer per connection, re-armed from the last frame,
        # not by a timeout on every receive: a timer per frame cost a fleet more than
        # reading the frame (measured, bench/push.py).
        loop = asyncio.get_running_loop()
        self._heard_at, self._went_silent = loop.time(), False
        self._watchdog = loop.call_later(self._silence, self._watch, socket)
        try:
            await self._read(socket, listener)
        finally:
            if self._watchdog is not None:
                self._watchdog.cancel()

    def _watch(self, socket: aiohttp.ClientWebSocketResponse) -> None:
        loop = asyncio.get_running_loop()
        quiet_until = self._heard_at + self._silence
        if loop.time() < quiet_until:
            self._watchdog = loop.call_at(quiet_until, self._watch, socket)
            return
        self._went_silent = True
        closing = asyncio.ensure_future(socket.close())  # receive() then says closed
        self._closing.add(closing)
        closing.add_done_callback(self._closing.discard)

    async def _read(self, socket: aiohttp.ClientWebSocketResponse, listener: Listener) -> None:
        loop = asyncio.get_running_loop()
        hello: dict[str, Any] = {}
        partial: dict[str, Any] = {}
        auth_rounds = 0
        while True:
            frame = await socket.receive()
            self._heard_at = loop.time()
            if frame.type in (aiohttp.WSMsgType.CLOSE, aiohttp.WSMsgType.CLOSING,
                              aiohttp.WSMsgType.CLOSED):  # fmt: skip
                return
            if frame.type is aiohttp.WSMsgType.ERROR:
                raise TransientError(f"socket error: {type(frame.data).__name__}")
            if frame.type is aiohttp.WSMsgType.BINARY:
                self.skipped.skip("binary frame (MessagePack is not read)")
                continue
            message = decode(frame.data) if frame.type is aiohttp.WSMsgType.TEXT else None
            if message is None:
                self.skipped.skip("not a JSON object with a type")
                continue
            kind = message["type"]
            if kind == "deltaStatus":  # nearly every frame: tested first
                status = message.get("status")
                if not isinstance(status, dict):
                    self.skipped.skip("deltaStatus without a status object")
                elif self.live:
                    await listener(status, False)
            elif kind == "hello":
                hello = message
                self.hello = {k: v for k, v in message.items() if isinstance(v, str | int)}
                self._secured = message.get("secured") is True
            elif kind == "authRequired":
                auth_rounds += 1
                if auth_rounds > MAX_AUTH_ROUNDS:
                    raise ProtocolError("the charger asks for auth again and again")
                hashed = await self._hash(message, hello)
                self._hashed = hashed
                await socket.send_str(encode(auth_message(message, hashed)))
            elif kind == "authError":
                raise WrongPassword(
                    f"wrong password: the charger refused it ({_text(message.get('message'))})"
                )
            elif kind == "authSuccess":
                log.debug("websocket_authenticated", charger=self._name)
            elif kind == "fullStatus":
                status = message.get("status")
                if not isinstance(status, dict):
                    self.skipped.skip("fullStatus without a status object")
                    continue
                partial.update(status)
                if message.get("partial") is True:
                    continue
                full, partial = partial, {}
                await listener(full, True)
                if not self.live:
                    self.live, self.reason = True, "live"
                    log.info("websocket_live", charger=self._name, url=_safe_url(self.url))
                    self._on_state()
            elif kind == "response":
                self._answered(message)
            else:
                self.skipped.skip(f"unknown message type {kind[:32]!r}")

    async def _hash(self, auth_required: Mapping[str, Any], hello: Mapping[str, Any]) -> bytes:
        serial = hello.get("serial")
        if not isinstance(serial, str) or not serial:
            raise ProtocolError("authRequired before a hello with the serial")
        kind = hash_kind(auth_required, hello)
        cached = self._hashes.get((serial, kind))
        if cached is None:
            # ~0.1-0.3 s of CPU: in a thread, so a fleet's event loop never waits on it.
            cached = await asyncio.to_thread(hashed_password, self._password, serial, kind)
            self._hashes[(serial, kind)] = cached
        return cached

    # --- writes ----------------------------------------------------------------------

    async def set(self, values: Mapping[str, JsonValue]) -> dict[str, Any]:
        """setValue for each key, in order; the charger's answer per key. The answer is
        not the proof: the caller confirms by the status that follows."""
        answers: dict[str, Any] = {}
        async with self._write_lock:
            for key, value in values.items():
                answers[key] = await self._set_one(key, value)
        return answers

    async def _set_one(self, key: str, value: JsonValue) -> Any:
        socket = self._socket
        if socket is None or not self.live:
            raise LinkDown(f"websocket not connected: {self.reason}")
        self._request_id += 1
        request_id = self._request_id
        message = set_value(request_id, key, value)
        if self._secured:
            if self._hashed is None:
                raise LinkDown("websocket: secured writes before authentication")
            message = secured(message, self._hashed)
        answer: asyncio.Future[Mapping[str, Any]] = asyncio.get_running_loop().create_future()
        self._answers[request_id] = answer
        try:
            await socket.send_str(encode(message))
            response = await asyncio.wait_for(answer, self._answer_timeout)
        except TimeoutError:
            raise TransientError("no answer over the websocket") from None
        except (aiohttp.ClientError, ConnectionError) as exc:
            raise TransientError(f"websocket write failed: {type(exc).__name__}") from None
        finally:
            self._answers.pop(request_id, None)
        if not succeeded(response):
            raise Rejected(f"charger refused {key} ({_text(response.get('message'))})")
        return True

    def _answered(self, response: Mapping[str, Any]) -> None:
        # Seen on 60.3: answers without requestId ("12sm" for a secured one): with one
        # write at a time, an answer without a readable id is the waiting write's.
        request_id = _request_number(response.get("requestId"))
        waiting = self._answers.get(request_id) if request_id is not None else None
        if waiting is None and len(self._answers) == 1:
            waiting = next(iter(self._answers.values()))
        if waiting is not None and not waiting.done():
            waiting.set_result(response)
        else:
            self.skipped.skip("a response nobody waits for")


def _request_number(value: Any) -> int | None:
    if isinstance(value, bool):
        return None
    if isinstance(value, int):
        return value
    if isinstance(value, str):
        digits = value.removesuffix("sm")
        if digits.isascii() and digits.isdigit() and len(digits) < 12:
            return int(digits)
    return None


def _text(value: Any) -> str:
    """A charger's message, bounded and printable, for a log line."""
    return printable(value[:120]) if isinstance(value, str) else "no reason given"


def _safe_url(url: str) -> str:
    return url.split("?", 1)[0]
