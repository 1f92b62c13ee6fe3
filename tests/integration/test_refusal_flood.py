"""A flood of commands that can never run does not fill the bridge's memory.

Each is refused at once, unstored, and its refusal goes out from memory, one QoS 2
result at a time (a PUBREC and a PUBCOMP each). Another broker user publishing such
commands faster than that (QoS 0, to charger names nobody has) queued a result each,
without bound: memory grew for as long as the flood lasted, and the result of a real
command waited behind all of them.
"""

from __future__ import annotations

import asyncio
import json
import uuid

import aiomqtt

from goe2mqtt.bridge.results import MAX_UNSTORED
from goe2mqtt.commands.runner import MAX_QUEUED_COMMANDS
from goe2mqtt.sim.broker import MosquittoBroker
from goe2mqtt.sim.charger import Faults

from ..conftest import MqttProbe, RunningBridge, Setup, until

FLOOD = 20 * MAX_UNSTORED


async def _most_pending(bridge: RunningBridge, most: list[int]) -> None:
    results = bridge.bridge.desk.results
    while True:
        most[0] = max(most[0], results.pending)
        await asyncio.sleep(0)


async def test_a_flood_of_valid_commands_on_a_full_queue_keeps_the_results_owed_bounded(
    broker: MosquittoBroker, setup: Setup, probe: MqttProbe, bridge: RunningBridge
) -> None:
    """A charger slow to answer a write: its queue fills, and the rest of a flood of good
    commands is refused "queue full" before the journal, as a command that can never
    run is (it cost a journal row and a result held until sent, each)."""
    garage = setup.charger("garage")
    garage.faults = Faults(delay=0.8, only="set")  # each write takes most of the timeout
    results = bridge.bridge.desk.results
    most = [0]
    watching = asyncio.create_task(_most_pending(bridge, most))
    try:
        async with aiomqtt.Client(
            broker.host, broker.port, identifier=f"hostile-{uuid.uuid4().hex[:8]}"
        ) as hostile:
            command = setup.topics.command("garage", "set_phase")
            for _ in range(FLOOD // 4):
                await hostile.publish(command, json.dumps({"phase": "auto"}), qos=0)
            await hostile.publish(command, json.dumps({"phase": "auto"}), qos=1)
        garage.faults = Faults()
        await until(lambda: results.pending == 0, "every result owed went out", within=60)
    finally:
        watching.cancel()
    assert most[0] <= MAX_UNSTORED + MAX_QUEUED_COMMANDS + 2, most[0]
    assert results.dropped > 0


async def test_a_flood_of_refused_commands_keeps_the_results_owed_bounded(
    broker: MosquittoBroker, setup: Setup, probe: MqttProbe, bridge: RunningBridge
) -> None:
    results = bridge.bridge.desk.results
    most = [0]

    async def watch() -> None:
        while True:
            most[0] = max(most[0], results.pending)
            await asyncio.sleep(0)

    watching = asyncio.create_task(watch())
    try:
        async with aiomqtt.Client(
            broker.host, broker.port, identifier=f"hostile-{uuid.uuid4().hex[:8]}"
        ) as hostile:
            for n in range(FLOOD):
                await hostile.publish(f"{setup.topics.base}/nosuch{n % 97}/cmd/set", b"x", qos=0)
            await hostile.publish(f"{setup.topics.base}/nosuch/cmd/set", b"x", qos=1)
        phase = json.dumps({"phase": "auto", "id": "real"})
        result = await probe.command(setup.topics.command("garage", "set_phase"), phase)
        assert result["ok"], result
        await until(lambda: results.pending == 0, "every result owed went out", within=60)
    finally:
        watching.cancel()
    assert most[0] <= MAX_UNSTORED + 1, most[0]
    assert results.dropped > 0  # the flood outran the broker: refusals were dropped, counted
