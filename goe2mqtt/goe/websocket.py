"""One charger's websocket (local ws://{host}/ws, or the cloud's, experimental).

The link keeps one connection open - never more: the go-e app shares the socket -
authenticates with the hashed password (computed once, in a thread of its own),
merges the fullStatus parts and hands each message's values to its listener. It
reconnects with backoff and jitter, and reads nothing it cannot trust: non-JSON,
binary frames, unknown types and frames over 1 MiB are counted and skipped, never
raised. What a peer can make it wait for is bounded: the handshake, the time from
connecting to live, a full status in parts (keys, bytes, time), and silence (the
charger sends a delta every second; the age of the last frame shows past a few
seconds, 50 s end the connection). What a peer says is redacted of the link's
secrets before it becomes a reason anyone sees.
"""

from __future__ import annotations

import asyncio
import contextlib
import random
import time
from collections.abc import Mapping
from typing import Any

import aiohttp
import structlog

from goe2mqtt.goe.failures import connection_failure
from goe2mqtt.goe.pushed import ANY_KEY, KeyFilter
from goe2mqtt.goe.transport import (
    GoeError,
    Keep,
    Listener,
    StateListener,
    TransientError,
    as_is,
)
from goe2mqtt.goe.ws_auth import LinkAuth
from goe2mqtt.goe.ws_keys import DerivedKeys
from goe2mqtt.goe.ws_login import LinkLogin
from goe2mqtt.goe.ws_pace import connect_turn
from goe2mqtt.goe.ws_parts import FullStatusParts
from goe2mqtt.goe.ws_protocol import HashKind, ProtocolError, decode, loggable_url, not_a_message
from goe2mqtt.goe.ws_secrets import LinkSecrets
from goe2mqtt.goe.ws_watchdog import next_look, reached, watchdogs
from goe2mqtt.goe.ws_writes import WebSocketWrites
from goe2mqtt.util.logs import SkipCount
from goe2mqtt.util.values import JsonValue

log = structlog.get_logger()

_TEXT = aiohttp.WSMsgType.TEXT
_CLOSED = frozenset({aiohttp.WSMsgType.CLOSE, aiohttp.WSMsgType.CLOSING, aiohttp.WSMsgType.CLOSED})
SILENCE = 50.0  # seconds without a frame: the socket is dead (deltas come every second)
QUIET_STEPS = (5.0, 10.0, 20.0, 30.0, 40.0)  # the last frame's age, shown on Connection
HANDSHAKE_WITHIN = 15.0  # TCP, TLS and the upgrade (aiohttp's own limit is 300 s)
LIVE_WITHIN = 30.0  # from the upgrade to live: hello, auth, the full status
CLOSE_WITHIN = 2.0  # our close frame sent, the peer's awaited
MAX_FRAME = 1 << 20
ANSWER_TIMEOUT = 10.0  # a setValue's response
MAX_BACKOFF = 60.0
WRONG_PASSWORD_BACKOFF = 300.0  # a password is changed in the app, not in seconds


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
        keys: KeyFilter = ANY_KEY,
        serial: str | None = None,
        derived_keys: DerivedKeys | None = None,
    ) -> None:
        self._session = session
        self.url = url
        self._name = name
        self._headers = dict(headers or {})
        self._silence = silence
        # A link looks at its socket this long after its last frame (ascending).
        self._look_after = tuple(sorted({*QUIET_STEPS, silence}))
        # The peer's words may echo one (an authError quoting the password): masked.
        self.secrets = LinkSecrets([password, *(v.removeprefix("Bearer ")
                                                for v in self._headers.values())])  # fmt: skip
        self._auth = LinkAuth(password, self.secrets, derived_keys, charger=name)
        self._login = LinkLogin(self._auth, self.secrets, serial, charger=name)
        self._socket: aiohttp.ClientWebSocketResponse | None = None
        self.live = False  # authenticated and the full status known
        self.reason = "not connected yet"  # why it is not live
        # The first connection is under way: not live, not failed. Each of its steps is
        # bounded (the handshake, the way to live) but the wait for its turn and its
        # hash, which the bridge's own pace and CPU set (the charger loop bounds those).
        self.settling = True
        self.skipped = SkipCount("websocket_frame_skipped", charger=name)
        self._parts = FullStatusParts(keys, self.skipped)
        self._writes = WebSocketWrites(
            self._socket_now, self.skipped, answer_timeout=answer_timeout,
            peer_text=self.secrets.peer_text,
        )  # fmt: skip
        self.connects = 0
        self._on_state: StateListener = lambda: None
        self._keep: Keep = as_is
        self._heard_at = 0.0  # loop time of the last frame
        self._live_by = 0.0  # loop time by which this connection must be live
        self.quiet_step = 0.0  # the QUIET_STEPS age last shown; 0: frames are coming
        self._end_reason: str | None = None  # why the link closed this connection
        self._watched: aiohttp.ClientWebSocketResponse | None = None  # by the watchdog
        self._watch_slot: int | None = None  # its next look's (goe/ws_watchdog)
        self._look = self._watch  # one bound method, not one per look armed
        self._closing: set[asyncio.Future[Any]] = set()

    @property
    def hello(self) -> dict[str, Any]:
        """The fields of this connection's hello, as kept ({}: none yet)."""
        return self._login.hello

    # --- the connection --------------------------------------------------------------

    async def run(
        self, listener: Listener, on_state: StateListener = lambda: None, keep: Keep = as_is
    ) -> None:
        """Keep the socket open until cancelled; hand every status to the listener -
        what ``keep`` makes of it, and nothing when that is None (a delta of nothing
        the caller reads: decided here, without a coroutine per frame)."""
        self._on_state, self._keep = on_state, keep
        failures = 0
        while True:
            started = time.monotonic()
            try:
                await self._connect_once(listener)
                self._down(self._end_reason or "closed by the charger")
            except (GoeError, ProtocolError) as exc:  # WrongPassword (ws_login), WrongCharger too
                self._down(str(exc))
            except TimeoutError:
                self._down("timed out connecting")
            except (aiohttp.ClientError, OSError) as exc:
                self._down(connection_failure(exc))  # the words every transport uses
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
        reason = self.secrets.redact(reason)
        was_live, self.live = self.live, False
        self.settling = False
        self.quiet_step = 0.0
        if reason != self.reason or was_live:
            level = log.error if reason.startswith("wrong password") else log.warning
            level("websocket_down", charger=self._name, reason=reason)
        self.reason = reason
        self._writes.fail(LinkDown(f"websocket closed: {reason}"))
        self._on_state()

    async def _connect_once(self, listener: Listener) -> None:
        await self._auth.before_connect()  # the kept keys: authRequired answered at once
        await connect_turn()  # a fleet's connects paced
        try:
            # aiohttp waits 300 s for an upgrade that never comes: bounded here.
            async with asyncio.timeout(HANDSHAKE_WITHIN):
                socket = await self._session.ws_connect(
                    self.url,
                    headers=self._headers,
                    max_msg_size=MAX_FRAME,
                    autoping=True,
                    timeout=aiohttp.ClientWSTimeout(ws_close=CLOSE_WITHIN),
                )
        except TimeoutError:
            raise TransientError(
                f"no websocket handshake within {HANDSHAKE_WITHIN:.0f} s"
            ) from None
        self.connects += 1
        self._socket = socket
        cancelled = False
        try:
            await self._converse(socket, listener)
        except asyncio.CancelledError:
            cancelled = True
            raise
        finally:
            self._socket = None
            # Cancelled (the charger stops: the bridge's stop), our close frame goes and
            # the peer's is not awaited: a fleet's sockets close at once, not each in a
            # handshake (3000 chargers' closes took a stop 3.5-5.6 s on a loaded VM).
            await _close(socket, 0.0 if cancelled else CLOSE_WITHIN)

    async def _converse(self, socket: aiohttp.ClientWebSocketResponse, listener: Listener) -> None:
        # Silence, the way to live and a full status in parts are watched by one look
        # per connection, re-armed lazily from the last frame, not by a timeout on
        # every receive: a timer per frame cost a fleet more than reading the frame
        # (docs/scaling.md); the looks of a fleet share one timer (goe/ws_watchdog).
        now = asyncio.get_running_loop().time()
        self._heard_at, self._live_by, self._end_reason = now, now + LIVE_WITHIN, None
        self.quiet_step = 0.0
        self._parts.clear()
        self._arm(socket)
        # The reading in a task of its own: a frame wakes the reading coroutine alone,
        # not the four it would run within (at 10 000 sockets 6 % of the CPU went to
        # passing each frame's wake-up down that chain). Cancelled, so is the reading.
        reading = asyncio.create_task(self._read(socket, listener), name=f"read:{self._name}")
        try:
            await reading
        finally:
            self._disarm()

    def _arm(self, socket: aiohttp.ClientWebSocketResponse, now: float | None = None) -> None:
        self._disarm()
        if now is None:
            now = asyncio.get_running_loop().time()
        live_by = None if self.live else self._live_by
        at = next_look(now, self._heard_at, self._look_after, live_by, self._parts.due)
        self._watched = socket
        self._watch_slot = watchdogs().arm(self, at, self._look)

    def _disarm(self) -> None:
        if self._watch_slot is not None:
            watchdogs().disarm(self, self._watch_slot)
            self._watch_slot, self._watched = None, None

    def _watch(self) -> None:
        socket, self._watch_slot, self._watched = self._watched, None, None
        if socket is None:
            return  # disarmed meanwhile
        now = asyncio.get_running_loop().time()
        quiet = now - self._heard_at
        if quiet >= self._silence:
            self._end(socket, f"no message for {self._silence:.0f} s")
        elif not self.live and now >= self._live_by:
            self._end(socket, f"not live {LIVE_WITHIN:.0f} s after connecting"
                              f" ({self._login.why_not_live()})")  # fmt: skip
        elif self._parts.due is not None and now >= self._parts.due:
            self._end(socket, self._parts.overdue)
        else:
            step = reached(quiet, QUIET_STEPS)
            if self.live and step != self.quiet_step:
                self.quiet_step = step  # the Connection entity shows it
                self._on_state()
            self._arm(socket, now)

    def _end(self, socket: aiohttp.ClientWebSocketResponse, reason: str) -> None:
        self._end_reason = reason
        closing = asyncio.ensure_future(_close(socket))  # receive() then says closed
        self._closing.add(closing)
        closing.add_done_callback(self._closing.discard)

    async def _read(self, socket: aiohttp.ClientWebSocketResponse, listener: Listener) -> None:
        loop = asyncio.get_running_loop()
        login = self._login
        login.reset()
        keep, closed = self._keep, _CLOSED
        while True:
            frame = await socket.receive()
            if frame.type is _TEXT:
                message = decode(frame.data)
            elif frame.type in closed:
                return
            elif frame.type is aiohttp.WSMsgType.ERROR:
                raise TransientError(f"socket error: {type(frame.data).__name__}")
            else:
                message = None  # a binary frame, or another that is no message
            junk = not_a_message(message)
            if junk is not None:
                self._skip(frame, message, junk)
                continue  # junk is no sign of life (silence, the age shown)
            assert message is not None  # (not_a_message said so)
            self._heard_at = loop.time()
            if self.quiet_step:
                self.quiet_step = 0.0  # messages again: the Connection entity says so
                self._on_state()
            kind = message["type"]
            if kind == "deltaStatus":  # nearly every frame: tested first
                if self.live:
                    kept = keep(message["status"], False)
                    if kept is not None:
                        await listener(kept, False)
                else:
                    self.skipped.skip("deltaStatus before the full status")
            elif kind == "hello":
                login.said_hello(message)
            elif kind == "authRequired":
                hashed = await self._hash(socket, *login.asked(message))
                await socket.send_str(login.answer(message, hashed))
            elif kind == "authError":
                raise login.refused(message)
            elif kind == "authSuccess":
                login.accepted()
            elif kind == "fullStatus":
                status = message["status"]
                self._parts.add(status, len(frame.data), loop.time())  # bounded: or raises
                if message.get("partial") is True:
                    continue
                kept = keep(self._parts.complete(), True)
                if kept is not None:
                    await listener(kept, True)
                if not self.live:
                    self.live, self.reason, self.settling = True, "live", False
                    log.info("websocket_live", charger=self._name, url=loggable_url(self.url))
                    self._on_state()
            elif kind == "response":
                self._writes.answered(message)

    def _skip(self, frame: aiohttp.WSMessage, message: Mapping[str, Any] | None, junk: str) -> None:
        """A frame that is no charger's message, counted by what it is."""
        if frame.type is aiohttp.WSMsgType.BINARY:
            junk = "binary frame (MessagePack is not read)"
        said = {} if message is None else {"type": self.secrets.peer_text(message["type"], 32)}
        self.skipped.skip(junk, **said)  # the first type seen is in the one log line

    async def _hash(
        self, socket: aiohttp.ClientWebSocketResponse, serial: str, kind: HashKind
    ) -> bytes:
        # Up to ~0.35 s of CPU, in the hashing threads, so a fleet's event loop never
        # waits on it. The wait is ours, not the peer's: the watchdog pauses meanwhile.
        loop = asyncio.get_running_loop()
        self._disarm()
        started = loop.time()
        try:
            return await self._auth.key(serial, kind)
        finally:
            now = loop.time()
            self._heard_at, self._live_by = now, self._live_by + (now - started)
            self._arm(socket)

    # --- writes ----------------------------------------------------------------------

    async def set(self, values: Mapping[str, JsonValue]) -> dict[str, Any]:
        """setValue for each key, in order; the charger's answer per key. The answer is
        not the proof: the caller confirms by the status that follows."""
        return await self._writes.set(values)

    def _socket_now(self) -> tuple[aiohttp.ClientWebSocketResponse, bytes | None]:
        socket = self._socket
        if socket is None or not self.live:
            raise LinkDown(f"websocket not connected: {self.reason}")
        if not self._login.secured:
            return socket, None
        if self._login.hashed is None:
            raise LinkDown("websocket: secured writes before authentication")
        return socket, self._login.hashed


async def _close(socket: aiohttp.ClientWebSocketResponse, within: float = CLOSE_WITHIN) -> None:
    """Close, bounded: aiohttp waits for the peer's close frame anew after every other
    frame, and a peer that keeps sending would hold the connection for ever. Cancelled
    there, aiohttp drops the connection (``within`` 0: at once, our frame sent)."""
    with contextlib.suppress(TimeoutError):
        async with asyncio.timeout(within):
            await socket.close()
