"""`goe2mqtt demo --house`: two chargers behind one 25 A fuse, a house and its meter.

A newcomer watches the site share the fuse: both cars charging, a kettle that takes the
room on one phase (the chargers step down at once), the meter falling silent (fallback),
and the sun (mode pv) shared by priority. One line per change of the site's state.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import random
import tempfile
import time
from dataclasses import dataclass
from typing import Any, TextIO

import aiomqtt

from goe2mqtt.bridge.process import Bridge
from goe2mqtt.config.settings import parse_settings
from goe2mqtt.sim.broker import EmbeddedBroker, MosquittoBroker, free_port
from goe2mqtt.sim.charger import VOLTAGES
from goe2mqtt.sim.demo import (
    DEMO_BASE,
    DEMO_DISCOVERY_PREFIX,
    DEMO_TOKEN,
    BrokerKind,
    cancel_all,
    choose_broker,
    leave_nothing,
    raise_if_failed,
)
from goe2mqtt.sim.house import DAY, House
from goe2mqtt.sim.simulator import SimulatedCharger, Simulator

HOUSE_CHARGERS = (("garage", "000011"), ("carport", "000012"))
METER_TOPIC = f"{DEMO_BASE}-house/meter"
STATE_TOPIC = f"{DEMO_BASE}/site/house/state"


@dataclass
class HouseNow:
    amps: tuple[float, float, float] = (2.0, 2.5, 1.5)  # fridge, lights, a heat pump idling
    sun: float = 0.0  # W
    silent: bool = False


def describe_state(state: dict[str, Any]) -> str:
    """One line of a site's state: what a newcomer wants to see."""
    room = state.get("room") or {}
    rooms = " ".join(f"{k.upper()} {v:g}" for k, v in room.items())
    parts = [f"mode {state['mode']}", f"room A: {rooms or '-'}"]
    for name, charger in state["chargers"].items():
        if charger["paused"]:
            parts.append(f"{name} paused ({charger['why'].removeprefix('paused: ')})")
        elif charger["allocated"] is not None:
            parts.append(f"{name} {charger['allocated']} A")
    if state["fallback"]:
        parts.append(f"FALLBACK: {state['fallback_reason']}")
    return "site house: " + " | ".join(parts)


async def _meter(client: aiomqtt.Client, simulator: Simulator, house: HouseNow,
                 pace: float) -> None:  # fmt: skip
    while True:
        await asyncio.sleep(0.5 * pace)
        if house.silent:
            continue
        drawn = [sum(simulator.charger(serial).currents()[p] for _, serial in HOUSE_CHARGERS)
                 for p in range(3)]  # fmt: skip
        sun = house.sun / 3 / VOLTAGES[0]
        reading = {f"l{p + 1}": round(house.amps[p] + drawn[p] - sun, 2) for p in range(3)}
        await client.publish(METER_TOPIC, json.dumps(reading))


async def publish_house_meter(simulator: Simulator, *, host: str, port: int, topic: str,
                              period: float = 2.0, seed: int = 1) -> None:  # fmt: skip
    """`goe2mqtt simulate --house TOPIC`: a seeded house's load at this time of day plus
    what every simulated charger draws, published as a grid meter's {"l1", "l2", "l3"}."""
    house = House(random.Random(seed))
    while True:  # a broker restart or one not up yet: back within a second, as a meter is
        try:
            async with aiomqtt.Client(host, port, identifier=f"goe2mqtt-house-{seed}") as client:
                while True:
                    other = house.at(int(time.time()) % DAY)
                    drawn = [sum(c.currents()[p] for c in simulator.chargers.values())
                             for p in range(3)]  # fmt: skip
                    reading = {f"l{p + 1}": round(other[p] + drawn[p], 2) for p in range(3)}
                    await client.publish(topic, json.dumps(reading))
                    await asyncio.sleep(period)
        except aiomqtt.MqttError:
            await asyncio.sleep(1.0)


async def _watch(client: aiomqtt.Client, out: TextIO) -> None:
    shown = ""
    async for message in client.messages:
        if not isinstance(message.payload, bytes) or not message.payload:
            continue
        if message.topic.value == STATE_TOPIC:
            line = describe_state(json.loads(message.payload))
            if line != shown:
                shown = line
                print(line, file=out, flush=True)
        else:
            print(f"{message.topic.value:<44} {message.payload.decode()[:100]}", file=out,
                  flush=True)  # fmt: skip


async def _script(client: aiomqtt.Client, simulator: Simulator, house: HouseNow, out: TextIO,
                  pace: float) -> None:  # fmt: skip
    def say(text: str) -> None:
        print(f"\n--- {text}", file=out, flush=True)

    say("two cars plugged in, 3 phases each; 25 A fuse; the house draws 2 A a phase")
    for _, serial in HOUSE_CHARGERS:
        simulator.charger(serial).plug_in()
    await asyncio.sleep(8 * pace)
    say(
        "the kettle (12 A on L1) comes on: the garage (priority 1) keeps what is left,"
        " the carport pauses"
    )
    house.amps = (14.0, 2.5, 1.5)
    await asyncio.sleep(8 * pace)
    say("kettle off: the carport resumes after resume_after, the garage ramps up 2 A a decision")
    house.amps = (2.0, 2.5, 1.5)
    await asyncio.sleep(8 * pace)
    say("the meter falls silent: after meter_timeout the chargers go to the fallback")
    house.silent = True
    await asyncio.sleep(8 * pace)
    say("the meter is back: normal control")
    house.silent = False
    await asyncio.sleep(6 * pace)
    say("mode pv, the sun gives 16 kW: both get their minimum, the garage (priority 1) the rest")
    house.sun = 16000.0
    await client.publish(f"{DEMO_BASE}/site/house/cmd/set_mode", '{"mode": "pv"}', qos=1)
    await asyncio.sleep(10 * pace)
    say('try it yourself: publish {"fuse": 16} to ' + f"{DEMO_BASE}/site/house/cmd/set_fuse")


async def run_house_demo(*, duration: float | None, out: TextIO, pace: float = 1.0,
                         broker_kind: BrokerKind = "auto") -> None:  # fmt: skip
    embedded: EmbeddedBroker | None = None
    mosquitto: MosquittoBroker | None = None
    protocol = "5"
    if choose_broker(broker_kind) == "amqtt":
        embedded = EmbeddedBroker(port=None)
        await embedded.start()
        host, port, protocol = embedded.host, embedded.port, "3.1.1"
    else:
        mosquitto = MosquittoBroker(port=None, own_session=True)
        mosquitto.start()
        host, port = mosquitto.host, mosquitto.port
    simulator = Simulator(SimulatedCharger(serial, DEMO_TOKEN) for _, serial in HOUSE_CHARGERS)
    await simulator.start()
    state_dir = tempfile.mkdtemp(prefix="goe2mqtt-house-")
    interval = max(1.0, 2 * pace)
    page = f"127.0.0.1:{free_port()}"  # its own: a daemon on 8099 must not stop the demo
    settings = parse_settings({
        "state_dir": state_dir,
        "http": {"listen": page},
        "mqtt": {"host": host, "port": port, "client_id": "goe2mqtt-house-demo",
                 "base_topic": DEMO_BASE, "discovery_prefix": DEMO_DISCOVERY_PREFIX,
                 "protocol": protocol},
        "chargers": [{"name": name, "serial": serial, "token": DEMO_TOKEN,
                      "api_url": simulator.url_for(serial), "scan_interval": 0.5 * pace}
                     for name, serial in HOUSE_CHARGERS],
        "sites": [{"name": "house", "fuse": 25, "meter_topic": METER_TOPIC,
                   "interval": interval, "meter_timeout": max(1.0, 3 * pace),
                   "resume_after": interval, "pv_min_charge_time": 0,
                   "chargers": [{"name": "garage", "priority": 1, "max_current": 16},
                                {"name": "carport", "priority": 2}]}],
    })  # fmt: skip
    print(f"--- a house on a private broker {host}:{port}: the site's state on {STATE_TOPIC},"
          f" the meter on {METER_TOPIC}; the status page: http://{page}/", file=out,
          flush=True)  # fmt: skip
    bridge = Bridge(settings)
    house = HouseNow()
    version = aiomqtt.ProtocolVersion.V5 if protocol == "5" else aiomqtt.ProtocolVersion.V311
    async with aiomqtt.Client(host, port, identifier="goe2mqtt-house-viewer",
                              protocol=version) as client:  # fmt: skip
        await client.subscribe(STATE_TOPIC)
        await client.subscribe(f"{DEMO_BASE}/site/house/cmd/result")
        tasks = [
            asyncio.create_task(bridge.run()),
            asyncio.create_task(_watch(client, out)),
            asyncio.create_task(_meter(client, simulator, house, pace)),
            asyncio.create_task(_script(client, simulator, house, out, pace)),
        ]
        try:
            await asyncio.wait({tasks[0]}, timeout=duration)
        finally:
            bridge.request_stop()
            await asyncio.wait({tasks[0]}, timeout=15)
            await cancel_all(tasks)
    with contextlib.suppress(Exception):
        await simulator.stop()
    await leave_nothing(state_dir, mosquitto, embedded)
    raise_if_failed(tasks[0])
