"""Writes that wait for the charger's answer, one key each: the websocket's and the
charger's own MQTT's.

A write is sent, then its answer awaited, matched by an id (the websocket's
requestId, the MQTT topic's key). No answer in time is a TransientError (the write
may have applied: the caller confirms by the status that follows); an answer that
refuses is a Rejected naming the key and the charger's words; an id still waiting
is not written again. The answer is never the proof of a write, only its refusal.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Awaitable, Callable, Hashable, Mapping
from typing import Any, Generic, TypeVar

from goe2mqtt.goe.transport import Rejected, TransientError
from goe2mqtt.util.values import JsonValue

Id = TypeVar("Id", bound=Hashable)
Answer = TypeVar("Answer")
# () -> None: sends one write; raises a TransientError (or Rejected) when it cannot.
Send = Callable[[], Awaitable[None]]


class AnsweredWrites(Generic[Id, Answer]):
    """The writes waiting for their answers, and the rules both transports share."""

    def __init__(
        self,
        *,
        answer_timeout: float,
        no_answer: Callable[[str], str],
        refusal: Callable[[Answer], str | None],
        one_at_a_time: bool = False,
    ) -> None:
        self._answer_timeout = answer_timeout
        self._no_answer = no_answer  # key -> why it failed, for the TransientError
        self._refusal = refusal  # the answer -> the charger's words when it refused
        # One at a time when an answer may lack the id: it is then the waiting write's.
        self._lock = asyncio.Lock() if one_at_a_time else None
        self._waiting: dict[Id, asyncio.Future[Answer]] = {}

    async def set(
        self,
        values: Mapping[str, JsonValue],
        write: Callable[[str, JsonValue], tuple[Id, Send]],
    ) -> dict[str, Any]:
        """Each key in order, each sent as ``write`` says (its id, how to send it) and
        answered before the next; the answer per key (True: not refused)."""
        async with self._lock or contextlib.nullcontext():
            answers: dict[str, Any] = {}
            for key, value in values.items():
                answers[key] = await self._write(key, *write(key, value))
            return answers

    async def _write(self, key: str, ident: Id, send: Send) -> bool:
        if ident in self._waiting:
            raise TransientError(f"a write of {key} is still waiting for its answer")
        answer: asyncio.Future[Answer] = asyncio.get_running_loop().create_future()
        self._waiting[ident] = answer
        try:
            await send()
            said = await asyncio.wait_for(answer, self._answer_timeout)
        except TimeoutError:
            raise TransientError(self._no_answer(key)) from None
        finally:
            self._waiting.pop(ident, None)
        refused = self._refusal(said)
        if refused is not None:
            raise Rejected(f"charger refused {key} ({refused})")
        return True

    def waiting(self, ident: Id) -> bool:
        answer = self._waiting.get(ident)
        return answer is not None and not answer.done()

    def only_one(self) -> Id | None:
        """The one write waiting, if exactly one waits (an answer without an id is its)."""
        if len(self._waiting) != 1:
            return None
        ident, answer = next(iter(self._waiting.items()))
        return None if answer.done() else ident

    def answer(self, ident: Id, said: Answer) -> bool:
        """The charger's answer to ``ident``; False when no write waits for it."""
        answer = self._waiting.get(ident)
        if answer is None or answer.done():
            return False
        answer.set_result(said)
        return True

    def fail(self, error: Exception) -> None:
        """The way to the charger closed: every waiting write fails with ``error``."""
        for answer in self._waiting.values():
            if not answer.done():
                answer.set_exception(error)
        self._waiting.clear()
