"""What the process needs before the bridge runs: its files, its MQTT session's options,
no other bridge live on its topics, the pace of its first polls, and the open-file
limit a fleet needs."""

from __future__ import annotations

import asyncio
import resource
import time
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING

import structlog

from goe2mqtt.commands.journal import Journal, JournalCorrupt
from goe2mqtt.config.settings import Settings
from goe2mqtt.mqtt.preflight import another_live_instance
from goe2mqtt.mqtt.session import MqttOptions
from goe2mqtt.mqtt.topics import Topics
from goe2mqtt.util.aio import cancel_until_ended

if TYPE_CHECKING:
    from goe2mqtt.goe.ws_keys import DerivedKeys

log = structlog.get_logger()

POLL_START_RATE = 50.0  # first polls per second at start-up, so a fleet does not burst
# ... but spread over no more than a scan interval, unless that means more first polls a
# second than this: each is a new (TLS) connection, and a thousand handshakes a second
# time out on a small machine (docs/scaling.md has the figures).
MAX_START_RATE = 250.0
# A stopped look ends within this (its side connection's DISCONNECT included), else it
# is left to the event loop's end: well inside the stop's deadline (bridge/stopping).
LOOK_ENDS_WITHIN = 5.0


def session_options(settings: Settings, topics: Topics) -> MqttOptions:
    """The MQTT session the settings describe (the bridge's; checks use it too)."""
    mqtt = settings.mqtt
    # The subscribers' pace is the fleet's, not an instance's: every shard re-sends at
    # Home Assistant's birth, within 2 s of the others.
    shards = settings.shard.count if settings.shard else 1
    return MqttOptions(
        host=mqtt.host,
        port=mqtt.port,
        username=mqtt.username,
        password=mqtt.password.get_secret_value() if mqtt.password else None,
        client_id=mqtt.client_id,
        keepalive=mqtt.keepalive,
        availability_topic=topics.bridge_availability,
        protocol=mqtt.protocol,
        session_expiry=mqtt.max_command_age,
        tls=mqtt.tls.context() if mqtt.tls is not None else None,
        bulk_rate=mqtt.bulk_rate / shards,
        max_rate=mqtt.max_rate / shards,
    )


def start_spread(fleet: int, scan_interval: float) -> float:
    """Seconds over which a charger's first poll falls at start-up."""
    return max(min(scan_interval, fleet / POLL_START_RATE), fleet / MAX_START_RATE)


def first_polls_due(scan_intervals: Sequence[float]) -> float:
    """Seconds from start until every charger's first poll is due (one scan_interval each)."""
    fleet = len(scan_intervals)
    return max((start_spread(fleet, every) + every for every in scan_intervals), default=0.0)


def journal_path(settings: Settings) -> Path:
    """{state_dir}/{client_id}.journal: one journal per MQTT session."""
    return Path(settings.state_dir) / f"{settings.mqtt.client_id}.journal"


class AnotherInstance(Exception):
    """A live bridge already serves these topics."""


async def refuse_another_instance(
    options: MqttOptions, topics: Topics, stop: asyncio.Event, *, wait: float
) -> bool:
    """Raise AnotherInstance while a live bridge serves these topics. Two bridges on the
    same topics would run every command twice; with one client id they would also
    knock each other off the broker every second. False when ``stop`` was set first:
    the look waits up to ``wait`` s for a heartbeat, and a SIGTERM meanwhile went
    unheard until the stop's backstop ended the process (exit 1)."""
    looking = asyncio.ensure_future(another_live_instance(options, topics.bridge_info, wait=wait))
    stopped = asyncio.ensure_future(stop.wait())
    try:
        await asyncio.wait({looking, stopped}, return_when=asyncio.FIRST_COMPLETED)
    finally:
        # Cancelled again until it ends: one cancel that came with the SUBACK of its
        # heartbeat subscription was swallowed (3.11's wait_for inside aiomqtt), and the
        # look went on waiting for the heartbeat past the stop's backstop (exit 1).
        left = await cancel_until_ended({looking, stopped}, within=LOOK_ENDS_WITHIN)
    if stop.is_set():
        log.info("bridge_stopped", during="the look for another live bridge", started=False,
                 still_running=len(left))  # fmt: skip
        return False
    if looking.result():
        raise AnotherInstance(
            f"another goe2mqtt is live on {topics.bridge}/ (online, and its"
            " info refreshes): stop it, or give this one its own base_topic"
            " (or shard) and client_id"
        )
    return True


def derived_keys(settings: Settings) -> DerivedKeys | None:
    """{state_dir}/{client_id}.keys.json: the websocket chargers' derived keys (goe/ws_keys);
    None (and the websocket code not imported) when no charger pushes over a websocket."""
    owned = settings.owned_chargers()
    pushing = [c.name for c in owned if c.resolved_transport == "websocket"]
    if not pushing:
        return None
    from goe2mqtt.goe.ws_auth import hashes_waiting
    from goe2mqtt.goe.ws_keys import DerivedKeys

    path = Path(settings.state_dir) / f"{settings.mqtt.client_id}.keys.json"
    return DerivedKeys(path, pushing, busy=hashes_waiting)


def open_journal(path: Path) -> Journal:
    """The journal; a corrupt one is moved aside (its commands cannot be read anyway)
    and a fresh one started, so a broken file never keeps the bridge down."""
    try:
        return Journal(path)
    except JournalCorrupt as exc:
        aside = Journal.move_aside(path, time.strftime("%Y%m%dT%H%M%S"))
        log.error(
            "journal_corrupt",
            file=str(path),
            reason=str(exc),
            moved_to=str(aside),
            action="started with an empty journal: commands it held get no result",
        )
        return Journal(path)


def raise_open_file_limit() -> None:
    """One socket per charger: a fleet needs more than the usual soft limit of 1024."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft < hard:
        try:
            resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
        except (ValueError, OSError) as exc:
            log.warning("open_file_limit", soft=soft, hard=hard, error=str(exc))
