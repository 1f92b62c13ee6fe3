"""structlog set-up: key-value events, console on a terminal, JSON lines otherwise.

Every event passes a redactor that masks the configured secrets wherever they
turn up, including in exception text: a token must never reach a log file. A short
secret (under ANYWHERE characters) is masked where it stands as a word of its own, not
inside another word: a password "online" masked "charger_online" and "went_online" in
every line, and a secret that short cannot be told from a word anyway.
"""

from __future__ import annotations

import logging
import sys
from collections.abc import Iterable, MutableMapping
from typing import Any, Literal, TextIO

import structlog

LogFormat = Literal["auto", "console", "json"]
LEVELS = ("debug", "info", "warning", "error")
MASK = "***"
# A secret this long is masked wherever it turns up; a shorter one only as a word of its
# own (not glued to a letter, digit or underscore on a side where it has one itself).
ANYWHERE = 16


def _word(char: str) -> bool:
    return char.isalnum() or char == "_"


def _mask_words(text: str, secret: str) -> str:
    """``text`` with every occurrence of ``secret`` that stands as a word masked."""
    glued_start, glued_end, size = _word(secret[0]), _word(secret[-1]), len(secret)
    parts: list[str] = []
    done = 0
    at = text.find(secret)
    while at >= 0:
        end = at + size
        if (glued_start and at and _word(text[at - 1])) or (
            glued_end and end < len(text) and _word(text[end])
        ):
            at = text.find(secret, at + 1)  # part of a longer word: not the secret
            continue
        parts += (text[done:at], MASK)
        done = end
        at = text.find(secret, end)
    return "".join((*parts, text[done:])) if parts else text


class SecretRedactor:
    """Masks every configured secret in a text (a short one where it is a word).

    A fleet has a password and a token per charger: 10 000 chargers are 20 000 secrets,
    and a search for each in every text of every log event took ~3 ms per event - a
    first start's one ``websocket_frame_skipped`` per charger alone ~30 CPU-s. With more
    than LINEAR secrets, those of at least PREFIX characters are found by their first
    PREFIX characters at each position of the text (a dict look-up per position), the
    rest searched as before; what is found is masked as before (same order, same result:
    a secret without the mask's character that is not in the text cannot appear in it
    by masking another).
    """

    PREFIX = 6
    LINEAR = 64  # up to this many secrets a search for each is the cheaper way

    def __init__(self, secrets: Iterable[str] = ()) -> None:
        # Longest first, so a secret containing another is masked whole.
        self.secrets = sorted({s for s in secrets if s}, key=len, reverse=True)
        self._rank = {secret: rank for rank, secret in enumerate(self.secrets)}
        self._searched = self.secrets  # looked for one by one in every text
        self._by_prefix: dict[str, list[str]] = {}
        if len(self.secrets) > self.LINEAR:
            # A secret with the mask's character in it could appear only once another
            # was masked: those are searched for one by one, as are the short ones.
            self._searched = [s for s in self.secrets if len(s) < self.PREFIX or "*" in s]
            for secret in self.secrets:
                if len(secret) >= self.PREFIX and "*" not in secret:
                    self._by_prefix.setdefault(secret[: self.PREFIX], []).append(secret)

    def redact(self, text: str) -> str:
        candidates = self._searched
        if self._by_prefix and len(text) >= self.PREFIX:
            index, width, found = self._by_prefix, self.PREFIX, []
            for start in range(len(text) - width + 1):
                starting = index.get(text[start : start + width])
                if starting is not None:
                    found += [s for s in starting if text.startswith(s, start)]
            if found:
                candidates = sorted({*candidates, *found}, key=self._rank.__getitem__)
        for secret in candidates:
            if secret in text:  # longest first: a longer one masked may have taken it
                if len(secret) >= ANYWHERE:
                    text = text.replace(secret, MASK)
                else:
                    text = _mask_words(text, secret)
        return text

    def scrub(self, value: Any) -> Any:
        """A copy of a JSON-like value with every secret masked."""
        return self._scrub(value) if self.secrets else value

    def __call__(
        self, logger: Any, method: str, event: MutableMapping[str, Any]
    ) -> MutableMapping[str, Any]:
        if not self.secrets:
            return event
        for key, value in event.items():
            event[key] = self._scrub(value)
        return event

    def _scrub(self, value: Any) -> Any:
        if isinstance(value, str):
            return self.redact(value)
        if isinstance(value, list | tuple | set):
            return [self._scrub(item) for item in value]
        if isinstance(value, dict):
            return {self._scrub(k): self._scrub(v) for k, v in value.items()}
        if isinstance(value, int | float | bool | type(None)):
            return value
        return self.redact(repr(value))


def configure_logging(
    level: str = "info",
    log_format: LogFormat = "auto",
    secrets: Iterable[str] = (),
    stream: TextIO | None = None,
) -> None:
    out = stream if stream is not None else sys.stderr
    if log_format == "auto":
        log_format = "console" if out.isatty() else "json"
    renderer: structlog.typing.Processor = (
        structlog.dev.ConsoleRenderer(colors=out.isatty())
        if log_format == "console"
        else structlog.processors.JSONRenderer()
    )
    structlog.configure(
        processors=[
            structlog.contextvars.merge_contextvars,
            structlog.processors.add_log_level,
            structlog.processors.TimeStamper(fmt="iso", utc=True),
            structlog.processors.format_exc_info,
            SecretRedactor(secrets),
            renderer,
        ],
        wrapper_class=structlog.make_filtering_bound_logger(getattr(logging, level.upper())),
        logger_factory=structlog.PrintLoggerFactory(out),
        cache_logger_on_first_use=False,
    )
    # Libraries (paho, aiohttp, amqtt) log through the standard library: send their
    # warnings and errors through the same renderer and redactor, one event per line.
    root = logging.getLogger()
    root.handlers[:] = [_ToStructlog()]
    root.setLevel(max(logging.WARNING, getattr(logging, level.upper())))


class _ToStructlog(logging.Handler):
    def emit(self, record: logging.LogRecord) -> None:
        try:
            message = record.getMessage()
        except (TypeError, ValueError):
            message = str(record.msg)
        extra: dict[str, str] = {}
        if record.exc_info and record.exc_info[1] is not None:
            # Why, in one line (the redactor masks it like any value); no traceback.
            exc = record.exc_info[1]
            extra["error"] = f"{type(exc).__name__}: {exc}"
        structlog.get_logger().log(record.levelno, message, logger=record.name, **extra)


class SkipCount(dict[str, int]):
    """What was skipped, by reason: the first of each reason is logged, the rest counted
    (a hostile peer repeating itself must not flood the log). At most MAX_REASONS
    reasons are told apart, whatever a caller passes: the rest are counted together."""

    MAX_REASONS = 32
    OTHER = "other reasons"

    def __init__(self, event: str, **context: Any) -> None:
        super().__init__()
        self._event = event
        self._context = context

    def skip(self, reason: str, **detail: Any) -> None:
        """Count one; ``detail`` goes only into the reason's one log line (a warning)."""
        self._count(reason, logging.WARNING, detail)

    def skip_routine(self, reason: str, times: int = 1) -> None:
        """Count ``times`` that every healthy peer causes (dropped by design): the
        reason's one line is info, so that a warning still means something is wrong."""
        count = self.get(reason)
        if count is None:
            self._count(reason, logging.INFO, {}, times)
        else:  # counted before (every frame of a fleet's: no more than this)
            self[reason] = count + times

    def _count(self, reason: str, level: int, detail: dict[str, Any], times: int = 1) -> None:
        if reason not in self and len(self) >= self.MAX_REASONS - 1:
            reason = self.OTHER  # the bucket is the last of the MAX_REASONS
        count = self.get(reason, 0)
        self[reason] = count + times
        if count == 0:
            structlog.get_logger().log(level, self._event, reason=reason, **detail, **self._context)
