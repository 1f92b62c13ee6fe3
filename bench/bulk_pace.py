"""What a slow subscriber receives of a re-send of everything retained, by bulk pace.

A bridge session holds N retained topics, sends them, then sends them all again (Home
Assistant's birth) at each mqtt.bulk_rate asked for (0: as fast as the broker
acknowledges). Subscribers at QoS 1, each a process of its own on the same machine: Python
(aiomqtt) subscribers that spend a fixed CPU time on each message, as Home Assistant's
loop does on each discovery config (goe2mqtt/sim/slow_subscriber.py). Mosquitto is started
with `set_tcp_nodelay true` (as contrib/mosquitto.conf) and its default
max_queued_messages 1000 (as a broker we do not configure). Printed per rate: the
re-send's seconds and how many of the N each subscriber received.

    python bench/bulk_pace.py --topics 20000 --rates 0 5000 2000 1000 --costs 0 100 300

With --first, the session's first send of the N topics instead (changes, which no bulk
pace spaces), at each mqtt.max_rate in --rates, the subscribers there before it begins.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import os
import subprocess
import sys
import time

import aiomqtt
from paced_session import paced_session, running

from goe2mqtt.sim.broker import MosquittoBroker

QUIET = 3.0  # s without a message: a subscriber has everything it will get


async def one_rate(
    broker: MosquittoBroker, topics: int, rate: float, costs: list[float], first: bool
) -> None:
    """``first``: the session's first send of every topic (changes, at max_rate ``rate``);
    else a re-send of them all (bulk, at bulk_rate ``rate``)."""
    session, base = paced_session(broker, 0.0 if first else rate, rate if first else 0.0)
    names = [f"{base}/c{n}/config" for n in range(topics)]
    for name in names:
        await session.publish_retained(name, b'{"n": 1, "pad": "' + b"x" * 200 + b'"}')
    async with contextlib.AsyncExitStack() as stack:
        if not first:
            await stack.enter_async_context(running(session))
            while session.backlog or not session.connected:
                await asyncio.sleep(0.1)
        ready = f"{base}/ready"
        counters = []
        async with aiomqtt.Client(broker.host, broker.port) as watcher:
            await watcher.subscribe(ready, qos=1)
            for cost in costs:
                argv = [sys.executable, "-m", "goe2mqtt.sim.slow_subscriber",
                        "--port", str(broker.port), "--topics", f"{base}/+/config",
                        "--cost-us", str(cost), "--ready", ready, "--done", f"{base}/done",
                        "--quiet", str(QUIET)]  # fmt: skip
                counters.append(subprocess.Popen(argv, stdout=subprocess.PIPE, text=True))
                async with asyncio.timeout(30):
                    async for _ in watcher.messages:
                        break  # it has subscribed
        began = time.monotonic()
        if first:
            await stack.enter_async_context(running(session))
        else:
            await session.republish_retained()  # Home Assistant's birth
        while session.backlog or not session.connected:
            await asyncio.sleep(0.01)
        took = time.monotonic() - began
        got = []
        for process in counters:
            out, _ = process.communicate(timeout=600)
            lines = [line for line in out.splitlines() if line]
            got.append(int(lines[-1]) if lines else 0)
        row = f"{rate or 'no limit':>9} | {took:8.2f} |"
        print(row + "".join(f" {n:>7} |" for n in got), flush=True)


async def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--topics", type=int, default=20_000)
    parser.add_argument("--rates", type=float, nargs="+", default=[0, 5000, 2000, 1000])
    parser.add_argument("--costs", type=float, nargs="+", default=[0, 100, 300])
    parser.add_argument("--rounds", type=int, default=1)
    parser.add_argument(
        "--first", action="store_true",
        help="the first send of every topic (changes) at each mqtt.max_rate in --rates",
    )  # fmt: skip
    args = parser.parse_args()
    what = "sent for the first time" if args.first else "sent again"
    print(f"{args.topics} retained topics {what}; Mosquitto set_tcp_nodelay, queue 1000;"
          f" {os.cpu_count()} CPUs")  # fmt: skip
    head = "".join(f" py {c:>4.0f}us |" for c in args.costs)
    rate, send = ("max_rate", "send") if args.first else ("bulk_rate", "re-send")
    print(f"{rate:>9} | {send} s |{head}")
    with MosquittoBroker(extra_config=("set_tcp_nodelay true",)) as broker:
        for _ in range(args.rounds):
            for rate in args.rates:
                await one_rate(broker, args.topics, rate, args.costs, args.first)


if __name__ == "__main__":
    asyncio.run(main())
