"""Home Assistant's birth message in the push benchmark (bench/push.py): every retained
config sent again by a bridge that had gone quiet, its N chargers' deltas still coming.

Measured: seconds until every config came again - counted by mosquitto_sub, since the
harness, busy with the chargers' sockets on a shared machine, would count its own lag -
the bridge's CPU seconds meanwhile, the longest loop hold in the bridge/info reports that
cover the re-send (one every 30 s, each about the time since the one before), how late
the changes made meanwhile came, and the bridge's RSS after. The time includes the
0.5-2 s the bridge waits after a birth (as Home Assistant asks).
"""

from __future__ import annotations

import asyncio
import time
from dataclasses import dataclass, field
from typing import Any

import aiomqtt
from procstat import percentile, proc_cpu, proc_rss

from goe2mqtt.sim.broker import MosquittoBroker


@dataclass
class Birth:
    configs: int
    seconds: float = float("nan")
    cpu_s: float = float("nan")
    held_ms: float = float("nan")
    latencies_ms: list[float] = field(default_factory=list)  # changes made meanwhile
    rss_mib: float = float("nan")
    peak_rss_mib: float = float("nan")


async def home_assistant_restarts(
    broker: MosquittoBroker,
    prefix: str,
    bridge: int,
    server: Any,
    expected: int,
    infos: list[tuple[float, dict[str, Any]]],
    latencies: list[float],
    deadline: float,
) -> Birth:
    """``bridge``: its pid; ``server``: the chargers' (PushServer: which change was sent
    when); ``expected``: the configs retained; ``infos``, ``latencies``: what the
    harness's listener collects."""
    birth = Birth(expected)
    marker = f"{prefix}/bench/marker/0/config"  # not ours: after the retained configs
    counter = await asyncio.create_subprocess_exec(
        "mosquitto_sub", "-h", broker.host, "-p", str(broker.port), "-t",
        f"{prefix}/+/+/+/config", "-R", "-C", str(expected + 1), "-F", "%U",
        stdout=asyncio.subprocess.PIPE,
    )  # fmt: skip
    assert counter.stdout is not None
    async with aiomqtt.Client(broker.host, broker.port) as client:
        while True:  # until the counter subscribed and read what is retained
            await client.publish(marker, b"marker", qos=1)
            try:
                await asyncio.wait_for(counter.stdout.readline(), 1.0)
                break
            except TimeoutError:
                continue
        latencies.clear()
        server.sent_at.clear()
        started, cpu = time.time(), proc_cpu(bridge)
        await client.publish(f"{prefix}/status", b"online", qos=1)
    try:
        lines = await asyncio.wait_for(counter.stdout.read(), deadline)
    except TimeoutError:
        counter.kill()
        raise RuntimeError(f"not every config came again in {deadline:.0f} s") from None
    await counter.wait()
    birth.seconds = float(lines.split()[-1]) - started
    birth.cpu_s = proc_cpu(bridge) - cpu
    birth.rss_mib = proc_rss(bridge)
    server.timing = False  # the changes made during the re-send: however late they come
    done = time.monotonic()
    while not any(at > done for at, _ in infos):  # the report that covers the end
        if time.monotonic() - done > 60:
            raise RuntimeError("no bridge/info after the re-send")
        await asyncio.sleep(0.2)
    birth.latencies_ms = list(latencies)
    server.timing = True
    covering = [info["loop"]["lag_max_ms"] for at, info in infos if at > done - birth.seconds]
    birth.held_ms = max(covering)
    birth.peak_rss_mib = proc_rss(bridge, "VmHWM")
    return birth


def print_births(births: list[tuple[int, Birth]]) -> None:
    if not births:
        return
    print(
        "\nHome Assistant's birth message (the bridge quiet, deltas still coming):\n"
        "| chargers | configs | all again s | bridge CPU s | loop held max ms |"
        " change p50 / p99 ms, changes made meanwhile (samples) | RSS MiB after |"
        " peak RSS MiB |"
    )
    print("|---:|---:|---:|---:|---:|---:|---:|---:|")
    for n, b in births:
        lat = b.latencies_ms
        print(
            f"| {n} | {b.configs} | {b.seconds:.1f} | {b.cpu_s:.1f} | {b.held_ms:.0f} |"
            f" {percentile(lat, 0.5):.0f} / {percentile(lat, 0.99):.0f} ({len(lat)}) |"
            f" {b.rss_mib:.1f} | {b.peak_rss_mib:.1f} |"
        )
