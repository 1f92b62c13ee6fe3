"""Command latency while a hostile publisher floods a charger's own MQTT topics.

    python bench/flood.py [--messages 20000] [--size 60000] [--commands 20]

A simulated charger on its own MQTT (transport: mqtt), the bridge in-process, a real
Mosquitto. A flooder publishes --messages values of --size bytes on the charger's key
topics (QoS 0, as fast as the broker takes them); once it is under way, --commands QoS 1
commands are sent one after the other, each timed from publish to its result. Prints
the count of results, latency p50/p99/max, and the bridge's skipped counts. The
charger's topics are on the bridge's second connection ({client_id}-chargers), so the
commands never wait behind the flood (issue 27, item 3).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import statistics
import time
import uuid

import aiomqtt

from goe2mqtt.bridge.process import Bridge
from goe2mqtt.config.settings import parse_settings
from goe2mqtt.mqtt.topics import Topics
from goe2mqtt.sim.broker import MosquittoBroker
from goe2mqtt.sim.charger_mqtt import MqttCharger
from goe2mqtt.sim.simulator import SimulatedCharger

SERIAL = "012345"


async def run(messages: int, size: int, commands: int) -> None:
    with MosquittoBroker() as broker:
        own = uuid.uuid4().hex[:8]
        settings = parse_settings({
            "mqtt": {"host": broker.host, "port": broker.port, "client_id": f"bench-{own}",
                     "base_topic": f"bench{own}"},
            "chargers": [{"name": "garage", "serial": SERIAL, "transport": "mqtt"}],
        })  # fmt: skip
        topics = Topics(settings.mqtt.base_topic)
        charger = MqttCharger(SimulatedCharger(SERIAL), broker.host, broker.port, interval=0.5)
        charger_task = asyncio.create_task(charger.run())
        bridge = Bridge(settings, confirm_delays=(0.0, 0.5, 1.0))
        bridge_task = asyncio.create_task(bridge.run())
        result_topic = topics.command("garage", "result")
        latencies: list[float] = []
        async with (
            aiomqtt.Client(broker.host, broker.port, identifier=f"probe-{own}") as probe,
            aiomqtt.Client(broker.host, broker.port, identifier=f"flood-{own}") as flooder,
        ):
            await probe.subscribe(result_topic, qos=1)
            while not (bridge.chargers.get("garage") and bridge.chargers["garage"].online):
                await asyncio.sleep(0.1)
            payload = json.dumps("z" * size).encode()
            flooded = [0]

            async def flood() -> None:
                for n in range(messages):
                    await flooder.publish(f"go-eCharger/{SERIAL}/{('nrg', 'amp')[n % 2]}",
                                          payload)  # fmt: skip
                    flooded[0] += 1

            flooding = asyncio.create_task(flood())
            while flooded[0] < messages // 4:
                await asyncio.sleep(0.01)
            started = time.monotonic()
            results = probe.messages.__aiter__()
            for n in range(commands):
                sent = time.monotonic()
                command = json.dumps({"charging_power": 6 + n % 10, "id": f"b{n}"})
                await probe.publish(topics.command("garage", "change_charging_power"),
                                    command, qos=1)  # fmt: skip
                async with asyncio.timeout(120):
                    async for message in results:
                        if message.topic.matches(result_topic):
                            break
                latencies.append(time.monotonic() - sent)
            flood_left = messages - flooded[0]
            await flooding
        bridge.request_stop()
        await bridge_task
        charger_task.cancel()
        await asyncio.gather(charger_task, return_exceptions=True)
    latencies.sort()
    p99 = latencies[min(len(latencies) - 1, int(0.99 * len(latencies)))]
    print(f"flood: {messages} x {size} B on the charger's key topics;"
          f" {flood_left} still to send when the last command's result came")  # fmt: skip
    print(f"commands: {len(latencies)}/{commands} results in {time.monotonic() - started:.1f} s;"
          f" latency p50 {1000 * statistics.median(latencies):.0f} ms,"
          f" p99 {1000 * p99:.0f} ms, max {1000 * latencies[-1]:.0f} ms")  # fmt: skip
    print(f"skipped: {bridge.chargers['garage'].info().get('skipped', {})}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--messages", type=int, default=20_000)
    parser.add_argument("--size", type=int, default=60_000)
    parser.add_argument("--commands", type=int, default=20)
    args = parser.parse_args()
    asyncio.run(run(args.messages, args.size, args.commands))


if __name__ == "__main__":
    main()
