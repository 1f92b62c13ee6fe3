"""The pace of bulk publishes (a whole family of topics, everything sent again), and the
ceiling of every publish, changes too.

A broker acknowledges a publish at once, whatever its subscribers have still to read,
and Mosquitto drops a QoS 1 message to a subscriber that already has
max_queued_messages (1000 by default) waiting. Sent as fast as they are acknowledged,
the 132 000 discovery configs a thousand chargers re-send at Home Assistant's birth
outran every subscriber slower than the bridge, and it lost configs on the way. So bulk
goes out at ``rate`` messages a second at most, after a first ``burst`` (a few chargers
send everything at once); a change never waits for a re-send (mqtt/owed.py puts it
ahead). Changes come in bursts too, that no bulk pace spaces: everything, changes and
bulk, goes at MAX_RATE at most (a clean stop's flush raises it as far as the offlines
owed need: mqtt/sender.py). Knows nothing of MQTT.
"""

from __future__ import annotations

import time
from collections.abc import Callable

BULK_RATE = 2000.0  # messages a second: mqtt.bulk_rate's default
# Every publish's ceiling (mqtt.max_rate's default), changes too: a fleet's first states,
# or a thousand chargers back after an outage at once, are a burst no bulk pace spaces,
# and a subscriber that reads slower than the bridge writes lost what passed the broker's
# queue. About what the bridge wrote unpaced on a 2-CPU machine (README: Topics).
MAX_RATE = 10_000.0
# Half Mosquitto's default queue: a subscriber that reads nothing for a while loses
# nothing of the first burst, with room left for the changes meanwhile.
BULK_BURST = 500
TOKEN_SLACK = 1e-6  # a clock's float error: a token due now is there
# The shortest wait for tokens: a few go together after it. Woken for each token, a re-send
# of topics (one token each) cost the loop ~70 us a message: 1.7 CPU-s for 20 000 at 2000
# a second, against 0.4 unpaced (0.6-0.8 with this). A rate past burst / PACE_TICK (50 000
# a second, faster than a broker acknowledges) is that.
PACE_TICK = 0.01


class Pace:
    """A token bucket: ``burst`` messages at once, then ``rate`` a second (0: no limit).

    A family goes whole once one token is there, taking its size (the level may go below
    zero): its members are built one at a time and must not wait in between, or every
    change behind them would.
    """

    __slots__ = ("_at", "_clock", "_level", "burst", "rate")

    def __init__(
        self, rate: float, burst: int = BULK_BURST, clock: Callable[[], float] = time.monotonic
    ) -> None:
        self.rate = rate
        self.burst = burst
        self._clock = clock
        self._level = float(burst)
        self._at = clock()

    def _refill(self) -> float:
        now = self._clock()
        self._level = min(float(self.burst), self._level + (now - self._at) * self.rate)
        self._at = now
        return self._level

    def delay(self) -> float:
        """Seconds until a bulk publish may go (0.0: now)."""
        if self.rate <= 0:
            return 0.0
        short = 1.0 - self._refill()
        return 0.0 if short <= TOKEN_SLACK else max(short / self.rate, PACE_TICK)

    def fit(self, messages: int, within: float) -> float:
        """Raise the rate (never lower it) so that ``messages`` more may go within
        ``within`` s from now, the tokens there now counted; the rate before, for
        restore(). No limit (0) stays none."""
        before = self.rate
        if before > 0 and within > 0:
            self.rate = max(before, (messages - self._refill()) / within)
        return before

    def restore(self, rate: float) -> None:
        """Back to ``rate`` (fit()'s): what accrued until now, at the raised rate."""
        self._refill()
        self.rate = rate

    def spend(self, messages: int) -> None:
        """``messages`` bulk publishes go now (delay() said 0.0)."""
        if self.rate > 0:
            self._refill()
            self._level -= messages
