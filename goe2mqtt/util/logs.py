"""structlog set-up: key-value events, console on a terminal, JSON lines otherwise.

Every event passes a redactor that masks the configured secrets wherever they
turn up, including in exception text: a token must never reach a log file.
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


class SecretRedactor:
    def __init__(self, secrets: Iterable[str] = ()) -> None:
        # Longest first, so a secret containing another is masked whole.
        self.secrets = sorted({s for s in secrets if s}, key=len, reverse=True)

    def redact(self, text: str) -> str:
        for secret in self.secrets:
            if secret in text:
                text = text.replace(secret, MASK)
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
        structlog.get_logger().log(record.levelno, message, logger=record.name)


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

    def skip_routine(self, reason: str) -> None:
        """Count one that every healthy peer causes (dropped by design): its one line is
        info, so that a warning still means something is wrong."""
        self._count(reason, logging.INFO, {})

    def _count(self, reason: str, level: int, detail: dict[str, Any]) -> None:
        if reason not in self and len(self) >= self.MAX_REASONS - 1:
            reason = self.OTHER  # the bucket is the last of the MAX_REASONS
        count = self.get(reason, 0)
        self[reason] = count + 1
        if count == 0:
            structlog.get_logger().log(level, self._event, reason=reason, **detail, **self._context)
