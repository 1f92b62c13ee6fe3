"""go-e API v2 client: the cloud API, or the local HTTP API v2 (same key space).

Knows HTTP and the go-e answer codes, nothing of MQTT. Every failure is a GoeError
subclass whose message is safe to log: the token travels in a header, never in a URL
or a message.
"""

from __future__ import annotations

import json
import time
from collections.abc import Collection, Mapping, Set
from email.utils import parsedate_to_datetime
from typing import Any

import aiohttp

from goe2mqtt.goe.failures import connection_failure
from goe2mqtt.goe.transport import (
    AuthFailed,
    ChargerOffline,
    RateLimited,
    Rejected,
    TransientError,
)
from goe2mqtt.util.text import printable
from goe2mqtt.util.values import JsonValue

Status = Mapping[str, Any]

# A full go-e status is ~10 KiB; anything near this is not a go-e answer.
MAX_BODY_BYTES = 1 << 20
# Local firmware has been seen resetting the connection on long filters; go-e does not
# say how long is too long. 200 characters is ~45 keys: two requests for our ~90.
LOCAL_FILTER_LENGTH = 200


def parse_retry_after(value: str | None, *, now: float | None = None) -> float | None:
    """Retry-After as seconds or an HTTP date; None when absent or unreadable."""
    if value is None:
        return None
    text = value.strip()
    if text.isascii() and text.isdigit():  # "²".isdigit() is True too
        return float(text)
    try:
        moment = parsedate_to_datetime(text)
    except (TypeError, ValueError, IndexError):
        return None
    if moment.tzinfo is None:
        return None
    now = time.time() if now is None else now
    return max(0.0, moment.timestamp() - now)


def filter_parts(keys: Collection[str], longest: int | None) -> list[str]:
    """The filter= values for ``keys``: one, or parts of at most ``longest`` characters."""
    ordered = sorted(keys)
    if longest is None:
        return [",".join(ordered)]
    parts: list[str] = []
    current: list[str] = []
    length = 0
    for key in ordered:
        if current and length + 1 + len(key) > longest:
            parts.append(",".join(current))
            current, length = [], 0
        length += len(key) + (1 if current else 0)
        current.append(key)
    if current:
        parts.append(",".join(current))
    return parts


def encode_set_value(value: JsonValue) -> str:
    """go-e wants every /api/set value JSON-encoded: 16, "name", null, true."""
    return json.dumps(value, separators=(",", ":"), ensure_ascii=False)


class GoeClient:
    """One charger's API. Shares the caller's aiohttp session (one pool for a fleet)."""

    def __init__(
        self,
        session: aiohttp.ClientSession,
        base_url: str,
        token: str | None,
        *,
        timeout: float = 10.0,
        local: bool = False,
    ) -> None:
        self._session = session
        self._local = local
        self._base_url = base_url.rstrip("/")
        self._headers = {"Authorization": f"Bearer {token}"} if token else {}
        self._timeout = aiohttp.ClientTimeout(total=timeout, sock_connect=min(timeout, 5.0))

    async def status(self, keys: Collection[str]) -> dict[str, Any]:
        """The charger's current values for ``keys`` (all keys when empty)."""
        if not keys:
            return await self._call("/api/status", {})
        # Some local firmware resets the connection on a long filter: ask in parts.
        parts = filter_parts(keys, LOCAL_FILTER_LENGTH if self._local else None)
        status = await self._call("/api/status", {"filter": parts[0]})
        for part in parts[1:]:
            status.update(await self._call("/api/status", {"filter": part}))
        return status

    async def set(self, values: Mapping[str, JsonValue]) -> dict[str, Any]:
        """Write values; returns the charger's per-key answer."""
        if not values:
            raise ValueError("set() needs at least one key")
        params = {key: encode_set_value(value) for key, value in values.items()}
        return await self._call("/api/set", params)

    async def _call(self, path: str, params: Mapping[str, str]) -> dict[str, Any]:
        try:
            async with self._session.get(
                self._base_url + path,
                params=params,
                headers=self._headers,
                timeout=self._timeout,
                allow_redirects=False,
            ) as response:
                body = bytearray()
                async for chunk in response.content.iter_chunked(1 << 16):
                    body += chunk
                    if len(body) > MAX_BODY_BYTES:
                        raise TransientError(f"answer larger than {MAX_BODY_BYTES} bytes")
                http_status = response.status
                retry_after = parse_retry_after(response.headers.get("Retry-After"))
        except TimeoutError:
            raise TransientError("timed out") from None
        except aiohttp.ClientError as exc:
            raise TransientError(connection_failure(exc)) from None
        if http_status == 429 or (http_status == 503 and retry_after is not None):
            wait = "" if retry_after is None else f", retry after {retry_after:.0f} s"
            raise RateLimited(f"rate limited ({http_status}{wait})", retry_after)
        if self._local:
            return _interpret_local(
                http_status, bytes(body), set_keys=set(params) if path == "/api/set" else set()
            )
        return _interpret(http_status, bytes(body))


def _interpret_local(http_status: int, body: bytes, *, set_keys: Set[str]) -> dict[str, Any]:
    """The local HTTP API v2: 404 means it is switched off; a set it refuses is a 500
    whose body answers each key sent (any other 500 is a server hiccup)."""
    payload = _decode(body)
    if http_status == 404:
        raise ChargerOffline("local HTTP API v2 not enabled in the app (404)")
    answers_keys = isinstance(payload, dict) and payload and payload.keys() <= set_keys
    if http_status == 500 and answers_keys:
        refused = [f"{k}: {v}" for k, v in payload.items() if v is not True]
        raise Rejected(f"charger refused ({printable('; '.join(refused)[:200])})")
    return _interpret(http_status, body)


def _interpret(http_status: int, body: bytes) -> dict[str, Any]:
    """Map a go-e answer to its data or the matching GoeError (pure, so it is easy to test)."""
    payload = _decode(body)
    reason = _reason(payload)
    if http_status == 401:
        raise AuthFailed("token rejected (401)")
    if http_status == 403:
        raise ChargerOffline(f"charger offline or cloud API disabled (403){reason}")
    if http_status == 404:
        raise ChargerOffline(f"no recent data from the charger (404){reason}")
    if http_status == 422:
        raise Rejected(f"every key rejected (422){reason}")
    if http_status >= 500:
        raise TransientError(f"server error ({http_status})")
    if not 200 <= http_status < 300:
        raise TransientError(f"unexpected HTTP status {http_status}")
    if payload is None:
        raise TransientError("answer is not valid JSON")
    if not isinstance(payload, dict):
        raise TransientError("answer is not a JSON object")
    if payload.get("success") is False:
        raise ChargerOffline(f"cloud reports failure{reason}")
    return payload


def _decode(body: bytes) -> Any:
    try:
        return json.loads(body)
    except (UnicodeDecodeError, ValueError, RecursionError):  # 200 000 "[" nest too deep
        return None


def _reason(payload: Any) -> str:
    """The peer's own words, as printable text: they reach logs, results, the status
    page and a terminal (check-config --connect). A lone surrogate that JSON's escapes
    make took the status page down (no UTF-8 holds it); an ESC sequence is the
    terminal's."""
    if isinstance(payload, dict) and isinstance(payload.get("reason"), str):
        return f": {printable(payload['reason'][:200])}"
    return ""
