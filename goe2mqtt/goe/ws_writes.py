"""Writes over a charger's websocket: setValue, one at a time, each answer matched.

Seen on 60.3: answers without a requestId ("12sm" for a secured one). With one write
at a time, an answer without an id (none, or null) is the waiting write's. An answer
that carries another request's id (one that timed out, or a peer that makes one up),
or an id not written as ours are, is never taken for the waiting write's: it is
counted and skipped.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any

import aiohttp

from goe2mqtt.goe.answers import AnsweredWrites, Send
from goe2mqtt.goe.transport import TransientError
from goe2mqtt.goe.ws_protocol import encode, secured, set_value, succeeded
from goe2mqtt.util.logs import SkipCount
from goe2mqtt.util.values import JsonValue

# () -> (the open socket, the hashed password when writes are to be secured); it
# raises a TransientError when the socket is not open and live.
SocketNow = Callable[[], tuple[aiohttp.ClientWebSocketResponse, bytes | None]]


class WebSocketWrites:
    """The link's writes and their answers."""

    def __init__(
        self,
        socket_now: SocketNow,
        skipped: SkipCount,
        *,
        answer_timeout: float,
        peer_text: Callable[[Any], str],
    ) -> None:
        self._socket_now = socket_now
        self._skipped = skipped
        self._request_id = 0
        # One write at a time: answers may lack the id.
        self._writes: AnsweredWrites[int, Mapping[str, Any]] = AnsweredWrites(
            answer_timeout=answer_timeout,
            no_answer=lambda key: "no answer over the websocket",
            # The charger's words, bounded and redacted.
            refusal=lambda said: None if succeeded(said) else peer_text(said.get("message")),
            one_at_a_time=True,
        )

    async def set(self, values: Mapping[str, JsonValue]) -> dict[str, Any]:
        return await self._writes.set(values, self._message)

    def _message(self, key: str, value: JsonValue) -> tuple[int, Send]:
        socket, hashed = self._socket_now()
        self._request_id += 1
        message = set_value(self._request_id, key, value)
        if hashed is not None:
            message = secured(message, hashed)

        async def send() -> None:
            try:
                await socket.send_str(encode(message))
            except (aiohttp.ClientError, ConnectionError) as exc:
                raise TransientError(f"websocket write failed: {type(exc).__name__}") from None

        return self._request_id, send

    def answered(self, response: Mapping[str, Any]) -> None:
        said = response.get("requestId")
        request_id = request_number(said)
        if request_id is not None:
            if not self._writes.answer(request_id, response):
                self._skipped.skip("a response to another request")
        elif said is not None:
            # An id not as ours are (1001.0, "#1001", [1001]) may be any write's: never
            # the waiting one's, or a late refusal would fail a write that was applied.
            self._skipped.skip("a response with an unreadable requestId")
        elif (waiting := self._writes.only_one()) is not None:
            self._writes.answer(waiting, response)
        else:
            self._skipped.skip("a response nobody waits for")

    def fail(self, error: Exception) -> None:
        """The socket closed: every waiting write fails with ``error``."""
        self._writes.fail(error)


def request_number(value: Any) -> int | None:
    """A requestId as ours are (1, 2, ..., or "12sm" for a secured one); None if not."""
    if isinstance(value, bool):
        return None
    if isinstance(value, int):
        return value
    if isinstance(value, str):
        digits = value.removesuffix("sm")
        if digits.isascii() and digits.isdigit() and len(digits) < 12:
            return int(digits)
    return None
