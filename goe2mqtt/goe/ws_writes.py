"""Writes over a charger's websocket: setValue, one at a time, each answer matched.

Seen on 60.3: answers without a requestId ("12sm" for a secured one). With one write
at a time, an answer without an id (none, or null) is the waiting write's. An answer
that carries another request's id (one that timed out, or a peer that makes one up),
or an id not written as ours are, is never taken for the waiting write's: it is
counted and skipped.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Mapping
from typing import Any

import aiohttp

from goe2mqtt.goe.client import Rejected, TransientError
from goe2mqtt.goe.ws_protocol import encode, secured, set_value, succeeded
from goe2mqtt.util.logs import SkipCount
from goe2mqtt.util.values import JsonValue

# () -> (the open socket, the hashed password when writes are to be secured); it
# raises a TransientError when the socket is not open and live.
WriteChannel = Callable[[], tuple[aiohttp.ClientWebSocketResponse, bytes | None]]


class WebSocketWrites:
    """The link's writes and their answers."""

    def __init__(
        self,
        channel: WriteChannel,
        skipped: SkipCount,
        *,
        answer_timeout: float,
        peer_text: Callable[[Any], str],
    ) -> None:
        self._channel = channel
        self._skipped = skipped
        self._answer_timeout = answer_timeout
        self._peer_text = peer_text  # the charger's words, bounded and redacted
        self._request_id = 0
        self._answers: dict[int, asyncio.Future[Mapping[str, Any]]] = {}
        self._lock = asyncio.Lock()  # one write at a time: answers may lack the id

    async def set(self, values: Mapping[str, JsonValue]) -> dict[str, Any]:
        answers: dict[str, Any] = {}
        async with self._lock:
            for key, value in values.items():
                answers[key] = await self._set_one(key, value)
        return answers

    async def _set_one(self, key: str, value: JsonValue) -> Any:
        socket, hashed = self._channel()
        self._request_id += 1
        request_id = self._request_id
        message = set_value(request_id, key, value)
        if hashed is not None:
            message = secured(message, hashed)
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
            raise Rejected(f"charger refused {key} ({self._peer_text(response.get('message'))})")
        return True

    def answered(self, response: Mapping[str, Any]) -> None:
        said = response.get("requestId")
        request_id = request_number(said)
        if request_id is not None:
            waiting = self._answers.get(request_id)
            if waiting is None:
                self._skipped.skip("a response to another request")
                return
        elif said is not None:
            # An id not as ours are (1001.0, "#1001", [1001]) may be any write's: never
            # the waiting one's, or a late refusal would fail a write that was applied.
            self._skipped.skip("a response with an unreadable requestId")
            return
        elif len(self._answers) == 1:
            waiting = next(iter(self._answers.values()))
        else:
            self._skipped.skip("a response nobody waits for")
            return
        if waiting.done():
            self._skipped.skip("a response nobody waits for")
        else:
            waiting.set_result(response)

    def fail(self, error: Exception) -> None:
        """The socket closed: every waiting write fails with ``error``."""
        for answer in self._answers.values():
            if not answer.done():
                answer.set_exception(error)
        self._answers.clear()


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
