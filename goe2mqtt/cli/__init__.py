"""Command line: run the daemon, check a config, run the simulator or the demo.

Nothing is imported here: each command imports what it uses when it runs
(cli/dispatch.py), so the daemon does not load the simulator, the demo or the
session reports, and of the go-e transports only those its chargers use.
"""

from __future__ import annotations

import sys
from collections.abc import Sequence

# What structlog imports when it happens to be installed: rich and better_exceptions to
# draw tracebacks, greenlet for its deprecated thread-local context. goe2mqtt uses none
# of them (exceptions are formatted as text before the renderer sees them), a plain
# install has none of them, and rich alone is ~4 MiB of a daemon's memory when a test
# tool brought it along.
STRUCTLOG_EXTRAS = ("rich", "better_exceptions", "greenlet")


def import_structlog_plain() -> None:
    """Import structlog as a plain install has it, whatever else is installed; the
    extras stay importable for anyone else in the process."""
    if "structlog" in sys.modules:
        return
    kept_out = [name for name in STRUCTLOG_EXTRAS if name not in sys.modules]
    for name in kept_out:
        sys.modules[name] = None  # type: ignore[assignment]  # import raises ImportError
    try:
        import structlog  # noqa: F401
    finally:
        for name in kept_out:
            if name in sys.modules and sys.modules[name] is None:
                del sys.modules[name]


def main(argv: Sequence[str] | None = None) -> int:
    from goe2mqtt.cli.early_stop import EarlyStop

    early = EarlyStop.defer()  # a stop before the daemon's loop hears it (cli/early_stop.py)
    try:
        import_structlog_plain()
        from goe2mqtt.cli.dispatch import dispatch

        return dispatch(argv, early=early)
    finally:
        early.restore()
