"""Whether one charger is there: online or offline (and why), its polls failed in a row,
the cloud's Retry-After, and how its polls ended (what bridge/info and /metrics show).

A charger counts as offline after OFFLINE_AFTER_FAILURES transient failures in a row,
or at once when the failure says so; it is online again with the first status it gives.
"""

from __future__ import annotations

import time
from collections import Counter
from typing import Any

import structlog

from goe2mqtt.goe.transport import GoeError, RateLimited
from goe2mqtt.util.values import iso

log = structlog.get_logger()

OFFLINE_AFTER_FAILURES = 3  # transient failures in a row before a charger counts as offline
MAX_RETRY_AFTER = 900.0  # a Retry-After longer than this is capped: we look again by then


class Availability:
    def __init__(self, name: str) -> None:
        self.name = name
        self.online = False
        self.offline_reason = "not reached yet"
        self.failures = 0
        self.polls: Counter[str] = Counter()  # outcome -> polls so ended (for /metrics)
        self.came_online = 0  # times it went online: its reconnects are the rest
        self.last_success: float | None = None
        self.poll_error: tuple[float, str] | None = None  # (unix time, what went wrong)
        self._not_before = 0.0  # monotonic: the cloud asked us to wait (Retry-After)

    def info(self) -> dict[str, Any]:
        return {
            "online": self.online,
            "last_poll": iso(self.last_success),
            "consecutive_failures": self.failures,
        }

    @property
    def polled(self) -> bool:
        """Whether this run has asked the charger at least once."""
        return self.last_success is not None or self.failures > 0

    def unreachable(self) -> str | None:
        return None if self.online else self.offline_reason

    @property
    def hold_off(self) -> float:
        """Seconds the cloud asked us to wait (Retry-After); 0 when it did not."""
        return max(0.0, self._not_before - time.monotonic())

    def heard(self) -> None:
        """The charger gave a status or pushed a change."""
        self.last_success = time.time()

    def answered(self) -> int:
        """A status was taken: the failed polls in a row it ends."""
        recovered_after, self.failures = self.failures, 0
        return recovered_after

    def came_up(self, recovered_after: int) -> bool:
        """Count it online; False if it was already."""
        if self.online:
            return False
        self.online = True
        self.came_online += 1
        log.info("charger_online", charger=self.name, failed_polls=recovered_after)
        return True

    def went_down(self, reason: str) -> None:
        if self.online:
            log.warning("charger_offline", charger=self.name, reason=reason)
        self.online = False
        self.offline_reason = reason

    def poll_failed(self, exc: GoeError) -> bool:
        """Count a failed poll (and the wait the cloud asked for); whether the charger
        counts as offline now."""
        self.failures += 1
        self.polls["rate_limited" if isinstance(exc, RateLimited) else "failed"] += 1
        self.poll_error = (time.time(), f"poll failed: {exc}")
        if isinstance(exc, RateLimited) and exc.retry_after is not None:
            wait = min(exc.retry_after, MAX_RETRY_AFTER)
            self._not_before = max(self._not_before, time.monotonic() + wait)
        if self.failures == 1:
            log.warning("poll_failed", charger=self.name, reason=str(exc))
        else:
            log.debug("poll_failed", charger=self.name, reason=str(exc), failures=self.failures)
        return exc.offline_now or self.failures >= OFFLINE_AFTER_FAILURES
