"""One deadline for the whole stop: SIGTERM to exit within STOP_WITHIN seconds.

Docker's stop_grace_period and the StatefulSet's terminationGracePeriodSeconds are 30 s:
a stop that takes longer ends in SIGKILL, whatever it was doing. So every stage of the
stop takes from what is left of one deadline, and each keeps back what the stages after
it need at least (their floor). The stages run in the order of what they are worth:

1. the poll loops and sockets end (cheap, but a fleet's worth of them);
2. a running command may finish: its own outcome (at most COMMAND_GRACE);
3. the results owed go out to the broker (the journal keeps what does not: the next
   start sends it);
4. the helpers end, the derived keys and the ledger's open sessions go to disk;
5. last, the chargers' and the bridge's ``offline`` and the MQTT goodbye: when this
   connection never said online, not waited for at all (the broker is away, or still
   holds the last offline), else whatever time is left.

Nothing durable is lost by a stage cut short: a command cut off is in the journal as
started, and the next start answers it ``outcome unknown``.

A task that will not end by its stage's share is cancelled and left to the event
loop's end; should anything still hold the process BACKSTOP_AFTER s after the SIGTERM,
the backstop ends it (exit 1), as Docker's SIGKILL would a few seconds later: the
journal and the ledger are written to survive a kill -9, and by then they have been.
"""

from __future__ import annotations

import asyncio
import os
import sys
import threading
import time
import traceback
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import structlog

from goe2mqtt.bridge.results import RESULT_FLUSH
from goe2mqtt.mqtt.session import SHUTDOWN_TIMEOUT

log = structlog.get_logger()

STOP_WITHIN = 20.0  # SIGTERM to exit: well below the 30 s grace of Docker and Kubernetes
BACKSTOP_AFTER = STOP_WITHIN + 5.0  # a stop still running then ends the process (exit 1)
COMMAND_GRACE = 10.0  # on stop, a running command may finish for this long
STUCK_FRAMES = 12  # the loop thread's innermost frames an overrun logs
STUCK_TASKS = 50  # and at most this many of its tasks
GOODBYE_SHARE = 0.8  # of the MQTT stage: the offlines and the bridge's; the rest, DISCONNECT


@dataclass(frozen=True)
class Stage:
    name: str
    at_most: float  # seconds this stage takes at most, when the deadline allows
    floor: float  # seconds kept back for it by the stages before it


# The stop's stages, in the order they run (and of their worth: see the module's doc).
POLLERS = Stage("pollers", at_most=3.0, floor=0.5)
COMMANDS = Stage("commands", at_most=COMMAND_GRACE, floor=0.0)
RESULTS = Stage("results", at_most=RESULT_FLUSH, floor=1.0)
HELPERS = Stage("helpers", at_most=2.0, floor=0.5)
KEYS = Stage("keys", at_most=2.0, floor=0.5)
LEDGER = Stage("ledger", at_most=0.0, floor=1.0)  # synchronous: a floor, never cut
MQTT = Stage("mqtt", at_most=SHUTDOWN_TIMEOUT, floor=0.5)
EXIT = Stage("exit", at_most=0.0, floor=1.0)  # the journal, the web server, the loop's end
STAGES = (POLLERS, COMMANDS, RESULTS, HELPERS, KEYS, LEDGER, MQTT, EXIT)


class StopBudget:
    """What is left of the stop's deadline, and each stage's share of it."""

    def __init__(
        self,
        within: float = STOP_WITHIN,
        *,
        stages: tuple[Stage, ...] = STAGES,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._clock = clock
        self.within = within
        self._started = clock()
        self._end = self._started + within
        self._stages = stages
        self.taken: dict[str, float] = {}  # stage -> seconds it took, as logged at the end
        self._mark = self._started  # when the last stage ended

    def left(self) -> float:
        return max(0.0, self._end - self._clock())

    def elapsed(self) -> float:
        return self._clock() - self._started

    def share(self, stage: Stage, at_most: float | None = None) -> float:
        """Seconds ``stage`` may take from now: at most its own (or ``at_most``), and
        never what the stages after it keep back; 0 when nothing is left for it."""
        later = self._stages[self._stages.index(stage) + 1 :]
        keep = sum(s.floor for s in later)
        cap = stage.at_most if at_most is None else at_most
        return max(0.0, min(cap, self.left() - keep))

    def done(self, stage: Stage) -> None:
        """``stage`` has ended: the time since the last stage ended is its own."""
        now = self._clock()
        self.taken[stage.name] = round(self.taken.get(stage.name, 0.0) + now - self._mark, 2)
        self._mark = now


def arm_backstop(
    after: float = BACKSTOP_AFTER,
    end: Callable[[int], object] = os._exit,
    loop: asyncio.AbstractEventLoop | None = None,
) -> threading.Timer:
    """End the process ``after`` s from now unless it has ended by itself (a thread of
    its own: an event loop that a task holds cannot end it). Its log line says where the
    loop's thread was and what the tasks of ``loop`` waited on: an overrun is rare, and
    without that it cannot be traced afterwards."""
    loop_thread = threading.get_ident()

    def overran() -> None:
        try:
            stuck = where_stuck(loop_thread, loop)
        except Exception as exc:  # racing a loop that still runs: never keep the process
            stuck = [f"not read: {exc!r}"]
        log.error("stop_overran", after=after, action="exit 1 without the rest of the stop",
                  stuck=stuck)  # fmt: skip
        end(1)

    timer = threading.Timer(after, overran)
    timer.daemon = True  # never what keeps the process alive
    timer.start()
    return timer


def where_stuck(thread: int, loop: asyncio.AbstractEventLoop | None) -> list[str]:
    """``thread``'s innermost frames, then each unfinished task of ``loop`` with the
    frame it waits in (read from another thread: a snapshot, good enough for a log)."""
    lines = []
    frame = sys._current_frames().get(thread)
    for entry in traceback.extract_stack(frame, limit=STUCK_FRAMES) if frame else []:
        lines.append(f"thread {entry.filename}:{entry.lineno} {entry.name}")
    if loop is not None:
        for task in list(asyncio.all_tasks(loop))[:STUCK_TASKS]:
            lines.append(f"task {task.get_name()} {_awaiting(task.get_coro())}")
    return lines


def _awaiting(coro: object) -> str:
    """Where a coroutine chain waits: each frame of it that still runs, outermost first."""
    chain = []
    while coro is not None:
        frame = getattr(coro, "cr_frame", None) or getattr(coro, "gi_frame", None)
        if frame is not None:
            code = frame.f_code
            chain.append(f"{code.co_name} ({Path(code.co_filename).name}:{frame.f_lineno})")
        coro = getattr(coro, "cr_await", None) or getattr(coro, "gi_yieldfrom", None)
    return " > ".join(chain[-STUCK_FRAMES:]) or "?"
