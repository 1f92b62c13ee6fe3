"""A slow QoS 1 subscriber in a process of its own: Home Assistant reading discovery.

It spends ``--cost-us`` of CPU on each message, as Home Assistant's loop does on each
config, and prints how many topics it received when ``--done`` arrives (the broker
sends a subscriber's messages in order: all that was not dropped came before) or once
``--quiet`` seconds passed without a message. It says it has subscribed by publishing
to ``--ready``. Nothing retained is sent to it at subscribe: only what is published
while it listens counts. For the tests and bench/bulk_pace.py.

    python -m goe2mqtt.sim.slow_subscriber --port 1883 --topics 'x/+/config' \\
        --cost-us 300 --ready x/ready --done x/done
"""

from __future__ import annotations

import argparse
import asyncio
import time

import aiomqtt
from paho.mqtt.subscribeoptions import SubscribeOptions


async def count_topics(
    port: int, pattern: str, cost_us: float, ready: str, done: str, quiet: float
) -> int:
    """Distinct topics matching ``pattern`` received until ``done`` (or a quiet)."""
    seen: set[str] = set()
    spin = cost_us / 1e6
    v5 = aiomqtt.ProtocolVersion.V5
    async with aiomqtt.Client("127.0.0.1", port, protocol=v5) as client:
        no_retained = SubscribeOptions(qos=1, retainHandling=2)
        await client.subscribe([(pattern, no_retained), (done, no_retained)])
        await client.publish(ready, b"1", qos=1)
        messages = aiter(client.messages)
        while True:
            try:
                message = await asyncio.wait_for(anext(messages), quiet if seen else None)
            except TimeoutError:
                break
            topic = message.topic.value
            if topic == done:
                break
            seen.add(topic)
            end = time.perf_counter() + spin
            while time.perf_counter() < end:
                pass
    return len(seen)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--topics", required=True, help="topic filter counted")
    parser.add_argument("--cost-us", type=float, default=0.0)
    parser.add_argument("--ready", required=True, help="published once subscribed")
    parser.add_argument("--done", required=True, help="ends the count when it arrives")
    parser.add_argument("--quiet", type=float, default=600.0, help="or this long silent")
    args = parser.parse_args()
    got = asyncio.run(
        count_topics(args.port, args.topics, args.cost_us, args.ready, args.done, args.quiet)
    )
    print(got, flush=True)


if __name__ == "__main__":
    main()
