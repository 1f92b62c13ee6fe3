"""What the journal holds, as the desk picks it up after a restart: a site's writes told
from the users' commands, and a row's command as the runners take it (bridge.desk)."""

from __future__ import annotations

import time

from goe2mqtt.commands.journal import Entry
from goe2mqtt.commands.outcomes import QueuedCommand
from goe2mqtt.commands.payloads import CommandError
from goe2mqtt.commands.services import Command, parse_delivered

STALE_SITE_WRITE = "not run: a site's write from before the restart; the site decides again"


def site_write(entry: Entry, parsed: Command) -> bool:
    """Whether a queued command is a site's write (service ``set``). Queued by the last
    run, its current or resume was decided on that run's meter reading, maybe long ago:
    only its pause and a limit journaled as a lowering run now (they only lower the
    draw); the site decides the rest again from a fresh reading (and
    its pauses from sites.json, which a resume journaled before the restart had already
    left: the site is told of it, bridge/sites.py).

    A site's write is what the journal marked as one (it came on the site's own topic),
    never what its id says: a user's command whose id starts with ``site:`` is a user's,
    run like any. Only a row of an earlier version, which did not mark them, is told by
    its id."""
    if entry.site is False or entry.service != "set":
        return False
    request_id = parsed.request_id
    return entry.site is True or (isinstance(request_id, str) and request_id.startswith("site:"))


def lowering_write(entry: Entry) -> Command | None:
    """A site's write that only lowers the draw (its pause, or a limit journaled as a
    lowering), parsed; None for anything else. Queued or cut short by a crash, it runs
    at the restart before the users' commands, on no reading: dropped, its charger drew
    its old limit, maybe beyond the fuse, until the site's first decision."""
    try:
        parsed = parse_delivered(entry.service, entry.payload, retained=entry.retained)
    except CommandError:
        return None
    return parsed if site_write(entry, parsed) and lowers(entry, parsed) else None


def lowers(entry: Entry, parsed: Command) -> bool:
    """Whether a site's write only lowers the draw: its pause, or a limit so journaled."""
    return parsed.arguments == {"frc": 1} or entry.lowers


def command_of(entry: Entry) -> QueuedCommand:
    """A journaled command; its age so far is all the wall clock can tell (another run)."""
    waited = max(0.0, time.time() - entry.received)
    return QueuedCommand(
        entry.seq, entry.charger, entry.service, entry.payload, entry.retained, entry.received,
        received_at=time.monotonic() - waited,
    )  # fmt: skip
