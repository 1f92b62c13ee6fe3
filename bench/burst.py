"""Benchmark: bursts of QoS 1 publishes on the session's client (mqtt/session_client).

Not a test: it prints one line. Starts a Mosquitto of its own, with Nagle's algorithm on
(its default) unless --nodelay, connects the bridge's session client (new_client) and,
--bursts times, publishes --size QoS 1 messages at once (the sender's window is 16),
timing the burst until its last PUBACK. Prints the burst time's p50/p99, the socket
send() calls per burst, and the process CPU per 1000 publishes. Run it against another
checkout with PYTHONPATH to compare (mqtt/writes.py joins a turn's packets; before it,
paho sent each packet alone).

    python bench/burst.py                       # 500 bursts of 16, Nagle on at the broker
    python bench/burst.py --size 200 --nodelay
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import time
from typing import Any

from goe2mqtt.mqtt.client import MqttOptions
from goe2mqtt.mqtt.session_client import new_client
from goe2mqtt.sim.broker import MosquittoBroker

COUNTED = 20  # bursts whose send() calls are counted, before the timed ones


class CountingSocket:
    """paho's socket, its send() calls counted."""

    def __init__(self, sock: Any) -> None:
        self.sock = sock
        self.sends = 0

    def send(self, data: Any) -> int:
        self.sends += 1
        return int(self.sock.send(data))

    def __getattr__(self, name: str) -> Any:
        return getattr(self.sock, name)


async def burst(client: Any, size: int, payload: bytes) -> None:
    await asyncio.gather(
        *(client.publish(f"burst/{n}", payload, qos=1, retain=True) for n in range(size))
    )


async def run(args: argparse.Namespace, broker: MosquittoBroker) -> None:
    options = MqttOptions(host=broker.host, port=broker.port, client_id="burst", bulk_rate=0)
    payload = b"x" * args.payload
    async with new_client(options) as client:
        paho = client._client
        # send() calls counted over a few bursts first, with a wrapper that is not a
        # socket (mqtt/writes.py then arms no TCP_QUICKACK: untimed).
        sock, counting = paho._sock, CountingSocket(paho._sock)
        paho._sock = counting
        for _ in range(COUNTED):
            await burst(client, args.size, payload)
        paho._sock = sock
        times: list[float] = []
        cpu = time.process_time()
        for _ in range(args.bursts):
            started = time.perf_counter()
            await burst(client, args.size, payload)
            times.append(time.perf_counter() - started)
        cpu = time.process_time() - cpu
    times.sort()
    p99 = times[min(len(times) - 1, int(0.99 * len(times)))]
    print(
        f"bursts {args.bursts} x {args.size} QoS 1 ({args.payload} B), broker nodelay "
        f"{args.nodelay}: burst p50 {1000 * statistics.median(times):.2f} ms, p99 "
        f"{1000 * p99:.2f} ms, send() per burst {counting.sends / COUNTED:.1f}, CPU "
        f"{1000 * cpu / (args.bursts * args.size):.3f} s per 1000 publishes",
        flush=True,
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--bursts", type=int, default=500)
    parser.add_argument("--size", type=int, default=16, help="publishes per burst")
    parser.add_argument("--payload", type=int, default=40, help="bytes per payload")
    parser.add_argument("--nodelay", action="store_true", help="set_tcp_nodelay true")
    args = parser.parse_args()
    extra = ("set_tcp_nodelay true",) if args.nodelay else ()
    with MosquittoBroker(extra_config=extra) as broker:
        asyncio.run(run(args, broker))


if __name__ == "__main__":
    main()
