"""A SIGTERM or SIGINT before the daemon's event loop hears them: kept, not fatal.

The loop's handlers come after the imports, the config and the bridge's set-up (~0.4 s);
a stop in that time (a container stopped right after its start) ended the process by the
signal's default, exit 143, without a word. From ``main`` on, a stop is noted and the
daemon stops at once when its loop takes over (EarlyStop.handed_over); every other
command gets the handlers it had back, and a stop noted meanwhile acts as it would have.
Only the interpreter's own start (~35 ms) is left. Imports nothing of goe2mqtt.
"""

from __future__ import annotations

import os
import signal
import threading
from types import FrameType
from typing import Any

STOP_SIGNALS = (signal.SIGTERM, signal.SIGINT)


class EarlyStop:
    def __init__(self) -> None:
        self._previous: dict[signal.Signals, Any] = {}
        self._received: list[signal.Signals] = []

    @classmethod
    def defer(cls) -> EarlyStop:
        """Note the stop signals from now on (in the main thread; elsewhere nothing)."""
        early = cls()
        if threading.current_thread() is threading.main_thread():
            for sig in STOP_SIGNALS:
                early._previous[sig] = signal.signal(sig, early._note)
        return early

    def _note(self, signum: int, frame: FrameType | None) -> None:
        self._received.append(signal.Signals(signum))

    def handed_over(self) -> bool:
        """The event loop's handlers are in place: whether a stop came before them."""
        self._previous.clear()  # the loop's handlers stay (asyncio resets them at its end)
        came, self._received = bool(self._received), []
        return came

    def restore(self) -> None:
        """The handlers as they were; a stop noted meanwhile is raised again, now."""
        previous, self._previous = self._previous, {}
        for sig, handler in previous.items():
            signal.signal(sig, handler)
        if previous and self._received:
            os.kill(os.getpid(), self._received[0])
