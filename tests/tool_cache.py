"""Where the tests keep the real clients they install once (Home Assistant, Node-RED).

Two test runs on one machine (two checkouts, a suite beside a benchmark) share the
cache: without a lock, the second one cleared or rewrote what the first was installing,
and both then ran a half-installed tool (seen: Node-RED without its own modules, an HA
venv cleared under a running pip). One install at a time, under an exclusive lock on a
file beside it; the others wait and then find it done. An install that died half-way
(killed, no network) left no ``.installed`` mark: the next one starts from nothing.
"""

from __future__ import annotations

import fcntl
import os
import shutil
from collections.abc import Callable
from pathlib import Path

CACHE = Path(os.environ.get("GOE2MQTT_CACHE", Path.home() / ".cache" / "goe2mqtt"))


def installed_once(target: Path, install: Callable[[Path], None], mark: str) -> Path:
    """``target``, with ``install(target)`` run into an empty ``target`` unless an
    earlier install completed (its mark, ``mark``, written last). Returns ``target``."""
    done = target / ".installed"
    if done.exists():  # the common case: no lock needed to read a finished install
        return target
    target.parent.mkdir(parents=True, exist_ok=True)
    with (target.parent / f"{target.name}.lock").open("w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)  # released when the file closes
        if done.exists():  # another run installed it while this one waited
            return target
        shutil.rmtree(target, ignore_errors=True)  # what a dead install left
        target.mkdir()
        install(target)
        done.write_text(mark + "\n")
    return target
