"""How far back the ledger keeps sessions: the prune horizon.

Pruning moves with the time seen to pass (monotonic), not the wall clock alone: a clock
stepped years ahead (an RTC reset, bad NTP) must not age the history. The horizon is
kept in the store's file, so a restart goes on from where the last run left off.
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable
from datetime import UTC, datetime

import structlog

from goe2mqtt.ledger.store import SessionStore, StoreUnusable

log = structlog.get_logger()

# s the wall clock may be ahead of the newest session's start at the first prune of a
# ledger that never pruned (a bridge off for longer, or a session longer, only keeps
# more, never less).
CLOCK_SLACK = 86_400.0


class PruneHorizon:
    """Where the last prune left off, moved on by the time seen to pass."""

    def __init__(
        self,
        store: SessionStore,
        *,
        keep_days: int,
        clock: Callable[[], float],
        monotonic: Callable[[], float],
    ) -> None:
        self.store = store
        self.keep_days = keep_days
        self.clock = clock
        self.monotonic = monotonic
        # Where the last prune left off, else the newest session on the books - kept in
        # the file at once: a session stored later under a clock stepped years ahead
        # must not seed it at the next start (it would take the history for years old).
        horizon = store.prune_horizon()
        if horizon is None:
            newest = store.newest()
            wanted = clock() - keep_days * 86_400
            horizon = (
                wanted if newest is None else min(wanted, newest + CLOCK_SLACK - keep_days * 86_400)
            )
            with contextlib.suppress(StoreUnusable):  # a full disk: kept at the first prune
                store.keep_horizon(horizon)
        self._horizon, self._horizon_mono = horizon, monotonic()

    def prune(self) -> int:
        """Forget what ended keep_days ago - by the wall clock, but never further than
        the time seen to pass since the last prune (monotonic) allows: after a clock
        jump ahead, history ages as time really passes (and a bridge stopped for a
        while keeps that much longer, never less). How many sessions went."""
        now, mono = self.clock(), self.monotonic()
        horizon = self._advanced(now, mono)
        wanted = now - self.keep_days * 86_400
        if wanted - horizon > CLOCK_SLACK:
            log.warning(
                "ledger_prune_held", clock=_iso(now), horizon=_iso(horizon),
                ahead_days=round((wanted - horizon) / 86_400, 1),
                reason="the wall clock is ahead of the time seen to pass: sessions are"
                " pruned as time passes, not as the clock says",
            )  # fmt: skip
        pruned = self.store.prune(horizon)
        self._horizon, self._horizon_mono = horizon, mono
        return pruned

    def keep(self) -> None:
        """The horizon moved on by the time seen to pass, into the file, pruning
        nothing (at a stop: a bridge restarted more often than it prunes still ages
        its history by the time it ran)."""
        now, mono = self.clock(), self.monotonic()
        horizon = self._advanced(now, mono)
        self.store.keep_horizon(horizon)
        self._horizon, self._horizon_mono = horizon, mono

    def _advanced(self, now: float, mono: float) -> float:
        wanted = now - self.keep_days * 86_400
        horizon = min(wanted, self._horizon + max(0.0, mono - self._horizon_mono))
        # A clock behind the newest session (a box without a battery clock, in 1970) says
        # nothing of the books' age: moved back by it, the horizon would hold for decades.
        newest = self.store.newest() if horizon < self._horizon else None
        return self._horizon if newest is not None and now < newest else horizon


def _iso(at: float) -> str:
    return datetime.fromtimestamp(at, UTC).isoformat(timespec="seconds")
