"""How many discovery configs a real Home Assistant takes in, by bulk pace.

The bridge's MQTT session sends N discovery configs (families of 100, as chargers'
are) to a real Home Assistant (tests/homeassistant.py: 2024.3.3, the test suite's) over
Mosquitto with `set_tcp_nodelay true` and its default max_queued_messages 1000, once
per mqtt.bulk_rate asked for (0: as fast as the broker acknowledges), each round with
configs of its own. Printed per rate: the seconds until the last config was
acknowledged by the broker, until Home Assistant had every entity (or gave up: no new
one for --quiet seconds), and how many of the N it has.

    python bench/ha_intake.py --configs 3000 --rates 0 5000 2000 1000 500
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import sys
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from paced_session import paced_session, running

from goe2mqtt.mqtt.families import FAMILY
from goe2mqtt.sim.broker import MosquittoBroker
from tests.homeassistant import HomeAssistant, ensure_installed

MEMBERS = 100


class Configs:
    """One charger's worth of sensor configs, a family the session builds when sent."""

    def __init__(self, node: str, start: int) -> None:
        self.key = f"{FAMILY}{node}/{start}"
        self._node, self._ids = node, range(start, start + MEMBERS)

    @property
    def size(self) -> int:
        return MEMBERS

    def topics(self) -> Iterator[str]:
        return (f"homeassistant/sensor/{self._node}/e{n}/config" for n in self._ids)

    def members(self) -> Iterator[tuple[str, bytes]]:
        for n in self._ids:
            config = {
                "name": f"E{n}", "unique_id": f"{self._node}_e{n}",
                "object_id": f"{self._node}_e{n}", "state_topic": f"{self._node}/e{n}",
                "device": {"identifiers": [f"{self._node}_{n // MEMBERS}"],
                           "name": f"{self._node} {n // MEMBERS}"},
                "unit_of_measurement": "W", "device_class": "power",
            }  # fmt: skip
            yield f"homeassistant/sensor/{self._node}/e{n}/config", json.dumps(config).encode()


async def one_rate(
    broker: MosquittoBroker, hass: HomeAssistant, configs: int, rate: float, quiet: float
) -> None:
    session, node = paced_session(broker, rate)
    for start in range(0, configs, MEMBERS):
        await session.publish_family(Configs(node, start))
    began = time.monotonic()
    async with running(session):
        await asyncio.sleep(0.1)
        await session.settled()
        sent = time.monotonic() - began
        have, last_new, last_count = 0, time.monotonic(), -1
        while have < configs and time.monotonic() - last_new < quiet:
            states = await hass.states()
            have = sum(1 for entity in states if entity.startswith(f"sensor.{node}_"))
            if have != last_count:
                last_new, last_count = time.monotonic(), have
            await asyncio.sleep(0.5)
        took = (last_new if have < configs else time.monotonic()) - began
        print(f"{rate or 'no limit':>9} | {sent:8.1f} | {took:9.1f} | {have:>6} of {configs}",
              flush=True)  # fmt: skip


async def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--configs", type=int, default=3000)
    parser.add_argument("--rates", type=float, nargs="+", default=[0, 5000, 2000, 1000, 500])
    parser.add_argument("--quiet", type=float, default=20.0)
    args = parser.parse_args()
    print(f"{args.configs} discovery configs to Home Assistant; Mosquitto set_tcp_nodelay,"
          f" queue 1000; {os.cpu_count()} CPUs")  # fmt: skip
    print("bulk_rate |   sent s | entities s | entities")
    hass_path = ensure_installed()
    with MosquittoBroker(extra_config=("set_tcp_nodelay true",)) as broker:
        hass = HomeAssistant(Path(tempfile.mkdtemp(prefix="goe2mqtt-ha-intake-")))
        await hass.start(hass_path)
        try:
            await hass.add_mqtt(broker.host, broker.port)
            for rate in args.rates:
                await one_rate(broker, hass, args.configs, rate, args.quiet)
        finally:
            await hass.stop()


if __name__ == "__main__":
    asyncio.run(main())
