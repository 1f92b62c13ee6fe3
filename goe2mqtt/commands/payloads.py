"""Command payloads and results: text on the wire <-> Python values.

Pure: parsing (JSON, or a bare word/text as Home Assistant publishes it, with an
optional id and ts), freshness, and the result JSON on {base}/{name}/cmd/result.
"""

from __future__ import annotations

import json
import math
import re
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import Any, Final

from goe2mqtt.util.numbers import finite_number, is_number
from goe2mqtt.util.text import has_control
from goe2mqtt.util.values import JsonValue, echoable_id, has_surrogate

MAX_PAYLOAD_BYTES = 4096
# Text that is not JSON is taken as it is (HA's select options, "07:30", a card name),
# unless it looks like broken JSON: then the error says so.
_BROKEN_JSON = re.compile(r'^\s*[\[{"]')
MAX_TEXT = 64


class CommandError(Exception):
    """Invalid command; the message is the reason put on the result topic."""


class _Nothing:
    """An empty payload: no arguments at all (distinct from a JSON null)."""

    def __repr__(self) -> str:
        return "NOTHING"


NOTHING: Final = _Nothing()

SetCall = dict[str, JsonValue]


@dataclass(frozen=True)
class Payload:
    value: Any  # a JSON value, a bare word, or NOTHING
    request_id: JsonValue = None
    sent_at: float | None = None  # unix seconds, from a "ts" field


# Numbers above this are milliseconds (JavaScript's Date.now()); in seconds it is the year 5138.
_MILLISECONDS_FROM = 1e11


def parse_timestamp(value: Any) -> float:
    """A "ts" field: unix seconds or milliseconds, or an ISO 8601 time with a zone."""
    if is_number(value):
        number = finite_number(value)
        if number is None or number < 0:
            raise CommandError("ts must be a unix time or an ISO 8601 time")
        return number / 1000 if number > _MILLISECONDS_FROM else float(number)
    if isinstance(value, str):
        try:
            moment = datetime.fromisoformat(value)
        except ValueError:
            raise CommandError("ts must be a unix time or an ISO 8601 time") from None
        if moment.tzinfo is None:
            raise CommandError("ts needs a time zone (e.g. 2026-01-01T12:00:00Z)")
        return moment.timestamp()
    raise CommandError("ts must be a unix time or an ISO 8601 time")


def check_fresh(sent_at: float | None, *, now: float, max_age: float, what: str = "sent") -> None:
    """Refuse a command that is too old to run, or from a clock too far ahead."""
    if sent_at is None:
        return
    age = now - sent_at
    if age > max_age:
        raise CommandError(f"stale: {what} {age:.0f} s ago, max_command_age is {max_age:.0f} s")
    if age < -max_age:
        raise CommandError(f"ts is {-age:.0f} s in the future: check the sender's clock")


def parse_payload(raw: bytes) -> Payload:
    if len(raw) > MAX_PAYLOAD_BYTES:
        raise CommandError(f"payload of {len(raw)} bytes is larger than {MAX_PAYLOAD_BYTES} bytes")
    try:
        text = raw.decode("utf-8").strip()
    except UnicodeDecodeError:
        raise CommandError("payload is not UTF-8 text") from None
    if not text:
        return Payload(NOTHING)
    try:
        value = json.loads(text)
    except RecursionError:  # 4 KiB of "[" nests deeper than the parser's stack
        raise CommandError("payload is nested too deeply") from None
    except ValueError:
        if _BROKEN_JSON.match(text) or has_control(text) or len(text) > MAX_TEXT:
            raise CommandError("payload is not valid JSON") from None
        return Payload(text)
    if "\\u" in text and has_surrogate(value):
        raise CommandError("payload holds a lone surrogate (\\ud800-\\udfff): that is no text")
    if isinstance(value, dict):
        request_id = value.pop("id", None)
        if not echoable_id(request_id):
            raise CommandError("id must be a string or a number within ±2**53")
        sent_at = parse_timestamp(value.pop("ts")) if "ts" in value else None
        return Payload(value, request_id, sent_at)
    return Payload(value)


def request_id_of(raw: bytes) -> JsonValue:
    """Best effort: the id of a payload that failed validation, so the result still matches."""
    if len(raw) > MAX_PAYLOAD_BYTES:
        return None
    try:
        value = json.loads(raw)
    except (ValueError, RecursionError):
        return None
    request_id = value.get("id") if isinstance(value, dict) else None
    return request_id if echoable_id(request_id) else None


# --- results ------------------------------------------------------------------------


def command_result(
    service: str, *, ok: bool, request_id: JsonValue, error: str | None = None, **extra: Any
) -> dict[str, Any]:
    """One result for {base}/{name}/cmd/result: service, ok, id, error and details."""
    result: dict[str, Any] = {"service": service, "ok": ok}
    if error is not None:
        result["error"] = error
    if request_id is not None:
        result["id"] = request_id
    result.update(extra)
    return result


def result_json(result: Mapping[str, Any]) -> str:
    """Always valid JSON: a value the charger sent as NaN or Infinity becomes null."""
    try:
        return json.dumps(result, allow_nan=False, ensure_ascii=False)
    except ValueError:
        return json.dumps(_finite(result), allow_nan=False, ensure_ascii=False)


def _finite(value: Any) -> Any:
    if isinstance(value, float) and not math.isfinite(value):
        return None
    if isinstance(value, Mapping):
        return {k: _finite(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_finite(v) for v in value]
    return value
