"""The bridge's stop, stage by stage, each within its share of one deadline.

bridge/stopping says what the stages are worth and how the deadline is shared; here
they run: the fleet's poll loops and sockets, a running command's last seconds, the
results owed, the helpers, the derived keys and the ledger to disk, and last the
offlines and the MQTT goodbye (none when the connection never said online).
"""

from __future__ import annotations

import asyncio
import contextlib
import gc
from collections.abc import Collection, Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING

from goe2mqtt.bridge.desk import CommandDesk
from goe2mqtt.bridge.fleet import stop_pollers
from goe2mqtt.bridge.ledger_out import LedgerOutput
from goe2mqtt.bridge.stopping import (
    COMMANDS,
    GOODBYE_SHARE,
    HELPERS,
    KEYS,
    LEDGER,
    MQTT,
    POLLERS,
    RESULTS,
    StopBudget,
)
from goe2mqtt.charger.loop import Charger
from goe2mqtt.mqtt.session import MqttSession
from goe2mqtt.mqtt.topics import OFFLINE, Topics
from goe2mqtt.util.aio import RECANCEL_EVERY

if TYPE_CHECKING:  # the websocket code is imported only when a charger pushes
    from goe2mqtt.goe.ws_keys import DerivedKeys


@dataclass(frozen=True)
class RunTasks:
    """The tasks of one run of the bridge."""

    mqtt: asyncio.Task[None]
    pollers: list[asyncio.Task[None]]
    workers: list[asyncio.Task[None]]  # the chargers' command tasks
    helpers: list[asyncio.Task[None]]
    spawned: Collection[asyncio.Task[None]]  # one-offs (retained cleanups, site messages)


async def wind_down(
    budget: StopBudget,
    tasks: RunTasks,
    chargers: Mapping[str, Charger],
    *,
    desk: CommandDesk,
    derived_keys: DerivedKeys | None,
    ledger_out: LedgerOutput,
    mqtt: MqttSession,
    topics: Topics,
) -> int:
    """Stop the run, each stage within its share of ``budget``; the number of tasks
    cancelled that had not ended by their share (left to the event loop's end).

    The cyclic garbage collector stays off until the bridge has stopped (Bridge.run
    turns it on again): a fleet's cancelled tasks are garbage in cycles, and once the
    memory upkeep has unfrozen the heap (as it ends) one collection walks all of it;
    a stop at 10 000 chargers held its loop for seconds at a time in gen-2 collections."""
    gc.disable()
    # A fleet's poll loops and sockets, cancelled together.
    polling = [*tasks.pollers, *tasks.spawned]
    stuck = await stop_pollers(chargers.values(), polling, budget.share(POLLERS))
    budget.done(POLLERS)
    # The running command may finish; one cut off gets "outcome unknown" at the next
    # start (the journal has it as started).
    if tasks.workers:  # a shard may own no charger
        _, late = await asyncio.wait(tasks.workers, timeout=budget.share(COMMANDS))
        stuck |= await stop_pollers((), late, budget.share(COMMANDS, RECANCEL_EVERY))
    budget.done(COMMANDS)
    await desk.results.flush(mqtt, budget.share(RESULTS))  # the rest: in the journal
    budget.done(RESULTS)
    stuck |= await stop_pollers((), tasks.helpers, budget.share(HELPERS))
    gc.disable()  # the memory upkeep, stopped during its start-up phase, turned it on
    budget.done(HELPERS)
    if derived_keys is not None:  # what is not written is hashed again at the next start
        with contextlib.suppress(TimeoutError):
            async with asyncio.timeout(budget.share(KEYS)):
                await derived_keys.close()
    budget.done(KEYS)
    ledger_out.finish()  # the open sessions' progress, on disk
    budget.done(LEDGER)
    # Never online on this connection: not waited for at all (the broker is away, or
    # what it holds is already offline). Online said, even with the connection not yet
    # up, the offline is owed: cut short, the DISCONNECT left "online" for good.
    goodbye = budget.share(MQTT) if mqtt.owes_goodbye else 0.0
    final = [(topics.availability(name), OFFLINE.encode()) for name in chargers]
    mqtt.stop(final, within=goodbye * GOODBYE_SHARE)
    pending = {tasks.mqtt}
    if goodbye > 0:
        _, pending = await asyncio.wait(pending, timeout=goodbye)
    stuck |= await stop_pollers((), pending, budget.share(MQTT, RECANCEL_EVERY))
    budget.done(MQTT)
    return len(stuck)
