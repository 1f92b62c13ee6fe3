"""Someone else writing a topic of ours: answered with our value, logged once a minute.

One mechanism for the bridge's availability and for the retained topics the session
watches (MQTT 5: subscribed with no_local, so only what others publish arrives there).
A write that differs from our value is answered by sending ours again. The bridge's
availability is answered each time: every bridge says the same "online" there, so two
of them cannot answer each other. A watched topic is answered at once a few times in a
row, then at growing intervals (a little random each), then no more until it has been
left alone for a while: two bridges misconfigured onto one base topic, each answering
the other's different value, would otherwise ping-pong for ever. However often it
happens, one line a minute says so. Knows MQTT and nothing of go-e.
"""

from __future__ import annotations

import random
import time
from collections.abc import Callable

import structlog

log = structlog.get_logger()

LOGGED_EVERY = 60.0  # s: one line at most, with the count since the last one
AT_ONCE = 3  # answers in a row sent at once; the next wait 1, 2, 4 ... s
GIVE_UP_AFTER = 12  # answers in a row, ~17 min: then the topic is left to the other
STREAK_ENDS = 600.0  # s without a write: the next one is answered at once again
TRACKED = 10_000  # topics in a streak at once; past it, another bridge is certain
PRUNE_EVERY = 10.0  # s: full, ended streaks are looked for this often at most


class Overwrites:
    """Decides when a write of someone else's on a topic of ours is answered."""

    def __init__(
        self,
        what: str,
        *,
        spaced: bool,
        clock: Callable[[], float] = time.monotonic,
        jitter: Callable[[], float] = lambda: random.uniform(0.5, 1.5),
    ) -> None:
        self._what = what
        self._spaced = spaced  # False: answered each time (the bridge's availability)
        self._clock = clock
        # Each spaced wait times this: two bridges that began at the same moment answered
        # each other in lockstep, counted alike, and both gave the topic up at once. Apart,
        # one answers first, the other's owed answer covers that write, and one of them
        # reaches GIVE_UP_AFTER first: the other keeps the topic.
        self._jitter = jitter
        # Topic -> (answers in a row, time of the last write): a streak.
        self._streaks: dict[str, tuple[int, float]] = {}
        self.seen = 0  # writes of others that differed from ours, ever
        self.unanswered = 0  # of them left unanswered
        self._since_said = 0
        self._said_at: float | None = None
        self._gave_up_said = False
        self._pruned_at: float | None = None

    def answer_in(self, topic: str, payload: bytes) -> float | None:
        """Someone else wrote ``payload``, not our value, on ``topic``: the seconds to
        wait before sending ours again, or None to leave it. Ask again only after the
        answer went (a write while one is owed is answered by it)."""
        now = self._clock()
        self.seen += 1
        self._say(topic, payload, now)
        if not self._spaced:
            return 0.0
        answers, last = self._streaks.pop(topic, (0, now))
        if now - last > STREAK_ENDS:
            answers = 0
        if answers == 0 and len(self._streaks) >= TRACKED:
            # Not at every write: a flood on new topics would cost a walk of them all each.
            if self._pruned_at is None or now - self._pruned_at >= PRUNE_EVERY:
                self._prune(now)
            if len(self._streaks) >= TRACKED:
                self._unanswered(topic)
                return None
        self._streaks[topic] = (answers + 1 if answers < GIVE_UP_AFTER else answers, now)
        if answers >= GIVE_UP_AFTER:
            self._unanswered(topic)
            return None
        return 0.0 if answers < AT_ONCE else float(2 ** (answers - AT_ONCE)) * self._jitter()

    def left(self, topic: str) -> bool:
        """Whether writes on the topic are left unanswered for now (given up on it)."""
        streak = self._streaks.get(topic)
        return (
            streak is not None
            and streak[0] >= GIVE_UP_AFTER
            and self._clock() - streak[1] <= STREAK_ENDS
        )

    def _unanswered(self, topic: str) -> None:
        self.unanswered += 1
        if not self._gave_up_said:
            self._gave_up_said = True
            log.error(
                "retained_contested",
                what=self._what,
                topic=topic,
                action=f"left to the other writer until it stops for {STREAK_ENDS:.0f} s",
                hint="another client writes this bridge's topics again and again: a second"
                " bridge with the same base_topic, or a user the broker's ACL should stop",
            )

    def _prune(self, now: float) -> None:
        self._pruned_at = now
        self._streaks = {
            topic: streak
            for topic, streak in self._streaks.items()
            if now - streak[1] <= STREAK_ENDS
        }

    def _say(self, topic: str, payload: bytes, now: float) -> None:
        # Each one is answered (or counted); logged once a minute at most (someone doing
        # it in a loop made a warning line per message).
        self._since_said += 1
        said_at = self._said_at
        if said_at is None or now - said_at >= LOGGED_EVERY:
            log.warning(
                f"{self._what}_overwritten",
                topic=topic,
                payload=payload[:40].decode("utf-8", "replace"),
                times=self._since_said,
                unanswered=self.unanswered,
                action="published ours again",
            )
            self._since_said, self._said_at = 0, now
