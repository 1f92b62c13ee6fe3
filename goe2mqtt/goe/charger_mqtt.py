"""The charger's own MQTT (firmware 055+, mce/mcu set in the app) as a Transport.

The charger publishes each key on {prefix}/{serial}/{key} (older firmware: with a
leading slash), changed keys at once and every key now and then; it takes writes
on {key}/set and answers on {key}/result. This module knows topics and payloads,
not the broker: goe/factory subscribes ``take`` to the transport's ``filters`` on a
ChargerBroker (the bridge's, over the MQTT layer) and writes through its ``publish``,
so the MQTT layer and this one stay apart.

Anyone who may publish on the broker can pretend to be the charger. So the topic form
is configuration (a leading slash in mqtt_prefix for old firmware), never learnt from
what is heard: the other form's messages are ignored, counted and logged once; a value whose
serial is not the topic's is refused; a write's "success" alone proves nothing (the
command runner confirms it by the key's value the charger publishes).
"""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import Awaitable, Callable, Collection, Mapping
from typing import Any

import structlog

from goe2mqtt.goe.answers import AnsweredWrites, Send
from goe2mqtt.goe.pushed import ANY_KEY, KeyFilter, PushedStatus
from goe2mqtt.goe.transport import ChargerOffline, GoeError, Listener, StateListener
from goe2mqtt.util.aio import Alarm
from goe2mqtt.util.logs import SkipCount
from goe2mqtt.util.text import printable
from goe2mqtt.util.values import JsonValue

log = structlog.get_logger()

SILENCE = 120.0  # not heard for this long: offline (the charger republishes every key)
ANSWER_TIMEOUT = 10.0  # a write's {key}/result
FIRST_BURST = 1.0  # after the first key, gather this long before announcing the status
MAX_PAYLOAD = 64 * 1024  # a key's value; a full status is ~10 KiB
RESULT = "result"
OTHER_FORM = "a message in the other topic form"
WRONG_SERIAL = "a serial that is not this charger's"

# Publishes a write (a ChargerBroker's publish); raises TransientError (not known to
# be sent, with the reason) or Rejected (the broker refused it).
Publish = Callable[[str, bytes], Awaitable[None]]


class ChargerMqttTransport:
    """One charger reached through the topics it publishes itself."""

    def __init__(
        self,
        serial: str,
        prefix: str,
        *,
        name: str,
        send: Publish,
        silence: float | None = None,
        answer_timeout: float = ANSWER_TIMEOUT,
        first_burst: float = FIRST_BURST,
        keys: KeyFilter = ANY_KEY,
    ) -> None:
        self._name = name
        self._serial = serial
        # The topic form is configuration, never learnt: anyone may publish in either
        # form, and a spoofer publishing all the time won the form from a quiet charger
        # at every restart (bench/chaos.py --hostile-peers). A leading slash in
        # mqtt_prefix is the old firmware's form; the other form is only counted.
        plain = prefix.lstrip("/")
        other = (f"{plain}/{serial}", f"/{plain}/{serial}")
        self._base = other[1] if prefix.startswith("/") else other[0]
        self._bases = (self._base, other[0] if prefix.startswith("/") else other[1])
        self._send = send
        self._silence = SILENCE if silence is None else silence
        self._first_burst = first_burst
        self._pending: dict[str, Any] = {}  # heard since the listener was last told
        self._heard_at: float | None = None  # monotonic
        self._arrived = Alarm()  # no wait_for: on 3.11 it can swallow a cancel
        self._writes: AnsweredWrites[str, str] = AnsweredWrites(
            answer_timeout=answer_timeout,
            no_answer=lambda key: f"no {key}/result from the charger",
            refusal=lambda text: None if text.lower() == "success" else text,
        )
        self._keys = keys
        self.skipped = SkipCount("charger_mqtt_value_skipped", charger=name)
        self._status = PushedStatus(keys, self.skipped)
        self._forms_heard: set[str] = set()
        self._both_forms_logged = False

    @property
    def bases(self) -> tuple[str, ...]:
        return self._bases

    @property
    def base(self) -> str:
        """The topic form in use (configured: mqtt_prefix, with or without a slash)."""
        return self._base

    @property
    def filters(self) -> tuple[str, ...]:
        """What to subscribe to: each key, and each write's result, in both forms (the
        other form is heard only to be counted and named in the log)."""
        return tuple(f"{base}/{leaf}" for base in self._bases for leaf in ("+", f"+/{RESULT}"))

    def owns(self, topic: str) -> bool:
        return any(topic.startswith(base + "/") for base in self._bases)

    def _heard_in(self, base: str) -> None:
        """Both forms heard: something else publishes as this charger (said once)."""
        self._forms_heard.add(base)
        if len(self._forms_heard) == 2 and not self._both_forms_logged:
            self._both_forms_logged = True
            log.warning(
                "charger_mqtt_both_forms",
                charger=self._name,
                heard=[f"{b}/+" for b in self._bases],
                using=f"{self._base}/+",
                hint="only the charger should publish there: the other form is ignored"
                " (see the README for a broker ACL)",
            )

    # --- what arrives ---------------------------------------------------------------

    def take(self, topic: str, payload: bytes) -> None:
        """A message on one of our filters (the bridge's MQTT callback: never raises).

        Cheap before anything is parsed: a flood of unknown keys costs a dict lookup."""
        for base in self._bases:
            if topic.startswith(base + "/"):
                rest = topic[len(base) + 1 :]
                break
        else:
            return
        if base not in self._forms_heard:
            self._heard_in(base)
        if base != self._base:
            self.skipped.skip(OTHER_FORM)
            return
        key, _, leaf = rest.partition("/")
        if leaf == RESULT:
            if self._writes.waiting(key):
                self._writes.answer(key, _result_text(payload))
            return
        if leaf or not key:
            return
        if self._keys.name(key, (), ()) is None:
            # A real charger publishes hundreds of keys the catalogue does not read.
            self.skipped.skip_routine("a key goe2mqtt does not read")
            return
        if len(payload) > MAX_PAYLOAD:
            self.skipped.skip("a value over 64 KiB")
            return
        try:
            value = json.loads(payload)
        except (UnicodeDecodeError, ValueError, RecursionError):
            self.skipped.skip("a value that is not JSON")
            return
        if key == "sse" and value != self._serial:
            # The topic names this charger; a value naming another is not its own.
            self.skipped.skip(WRONG_SERIAL)
            return
        kept = self._status.keep({key: value}, full=False)
        if kept:
            self._heard_at = time.monotonic()
            self._pending.update(kept)
            self._arrived.set()

    # --- the push side ----------------------------------------------------------------

    @property
    def live(self) -> bool:
        return self._heard_at is not None and time.monotonic() - self._heard_at < self._silence

    @property
    def settling(self) -> bool:
        return False  # it waits for the first keys on its own (the first poll is late)

    @property
    def connection(self) -> str:
        return "mqtt" if self.live else f"none (mqtt: {self._why_not()})"

    def _why_not(self) -> str:
        if self._heard_at is None:
            if len(self._forms_heard) == 1 and self._bases[1] in self._forms_heard:
                # Old firmware publishes with a leading slash (or someone else does).
                return (
                    f"nothing heard on {self._base}/+, only on {self._bases[1]}/+: for"
                    " firmware before 055.7 give mqtt_prefix with that leading slash"
                )
            if self._base in self._forms_heard:
                # Its clock every second, its other keys only now and then: MQTT is on.
                return (
                    f"heard on {self._base}/+, but no key goe2mqtt reads yet: the charger"
                    " publishes every key now and then"
                )
            return (
                f"nothing heard on {self._base}/+ yet: is the charger's MQTT (mce) on,"
                " with this broker (mcu) and prefix (mtp)?"
            )
        return f"not heard for {self._silence:.0f} s"

    async def push(self, listener: Listener, on_state: StateListener) -> None:
        told_full = False
        was_live = False
        while True:
            await self._arrived.wait(self._silence / 4)
            if not told_full and self._arrived.is_set():
                await asyncio.sleep(self._first_burst)  # the first keys come in a burst
            if self.live != was_live:
                was_live = not was_live
                if not was_live:
                    log.warning("charger_mqtt_silent", charger=self._name,
                                reason=self._why_not())  # fmt: skip
                on_state()
            if not self._arrived.is_set():
                continue
            self._arrived.clear()
            pending, self._pending = self._pending, {}
            full = not told_full
            told_full = True
            try:
                await listener(self._status.read() if full else pending, full)
            except GoeError as exc:  # a WrongCharger: said once per picture, no traceback
                log.warning("charger_mqtt_update_refused", charger=self._name, reason=str(exc))
            except Exception:  # a bug must not end the stream
                log.exception("charger_mqtt_update_failed", charger=self._name)

    # --- the Transport side -----------------------------------------------------------

    async def status(self, keys: Collection[str]) -> dict[str, Any]:
        if not self.live:
            raise ChargerOffline(f"charger's own MQTT: {self._why_not()}")
        return self._status.read(keys)

    async def set(self, values: Mapping[str, JsonValue]) -> dict[str, Any]:
        return await self._writes.set(values, self._message)

    def _message(self, key: str, value: JsonValue) -> tuple[str, Send]:
        payload = json.dumps(value, separators=(",", ":"), ensure_ascii=False).encode()
        topic = f"{self._base}/{key}/set"
        return key, lambda: self._send(topic, payload)


def _result_text(payload: bytes) -> str:
    """The charger's answer: success, or an error text (printable, bounded)."""
    text = payload[:200].decode("utf-8", "replace").strip()
    if len(text) >= 2 and text[0] == text[-1] == '"':
        text = text[1:-1]
    return printable(text) or "empty answer"
