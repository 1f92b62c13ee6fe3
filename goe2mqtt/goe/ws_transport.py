"""The charger's websocket as a Transport, with HTTP polling to fall back on.

WebSocketTransport is a PushTransport (status, set, and a push side): the charger loop
runs ``push(listener, on_state)`` beside its poll loop, and polls only while
``live`` is False and ``settling`` (the first connection under way) is not. While
the socket is up nothing goes over HTTP; while it is down, status and set go to the
fallback (the local HTTP API, or the cloud's) if there is one.
A socket can stand and say nothing: a read-back that saw no fresh frame asks the
fallback (``ask``) rather than believe the last copy.
"""

from __future__ import annotations

from collections.abc import Collection, Mapping
from typing import Any

from goe2mqtt.goe.pushed import ANY_KEY, KeyFilter, PushedStatus
from goe2mqtt.goe.transport import Listener, StateListener, TransientError, Transport
from goe2mqtt.goe.websocket import WebSocketLink
from goe2mqtt.util.values import JsonValue


class WebSocketTransport:
    """The charger's websocket, and its HTTP API while the socket is down."""

    def __init__(
        self,
        link: WebSocketLink,
        fallback: Transport | None,
        *,
        cloud: bool,
        keys: KeyFilter = ANY_KEY,
    ) -> None:
        self.link = link
        self._fallback = fallback
        self._cloud = cloud
        self._status = PushedStatus(keys, link.skipped)

    @property
    def live(self) -> bool:
        return self.link.live

    @property
    def settling(self) -> bool:
        return self.link.settling

    @property
    def connection(self) -> str:
        name = "cloud websocket" if self._cloud else "websocket"
        if self.link.live:
            quiet = self.link.quiet_step  # coarse steps: not a new value every second
            return f"{name} (no frame for {quiet:.0f} s)" if quiet else name
        if self._fallback is None:
            return f"none ({name}: {self.link.reason})"
        return f"polling ({name}: {self.link.reason})"

    @property
    def skipped(self) -> Mapping[str, int]:
        return self.link.skipped

    async def push(self, listener: Listener, on_state: StateListener) -> None:
        # What is kept of each message goes on; a delta of nothing kept, not at all.
        await self.link.run(listener, on_state, keep=self._status.keep)

    async def status(self, keys: Collection[str]) -> dict[str, Any]:
        if self.link.live:
            return self._status.read(keys)
        if self._fallback is None:
            raise TransientError(f"websocket down: {self.link.reason}")
        return await self._fallback.status(keys)

    async def ask(self, keys: Collection[str]) -> dict[str, Any] | None:
        if self._fallback is None:
            return None
        answer = await self._fallback.status(keys)
        self._status.update(answer)  # fresher than the socket's copy: the next delta builds on it
        return answer

    async def set(self, values: Mapping[str, JsonValue]) -> dict[str, Any]:
        if self.link.live or self._fallback is None:
            return await self.link.set(values)
        return await self._fallback.set(values)
