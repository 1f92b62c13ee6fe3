"""bench/chaos.py's MQTT clients: the commander (a persistent session that sends
commands and counts their results), the hostile sender, and the watchers of the
bridge's availability, of retained JSON and of spoofed values."""

from __future__ import annotations

import asyncio
import contextlib
import json
import random
import time
import uuid
from collections import Counter
from typing import Any

import aiomqtt
from chaos_breaks import BASE
from hostile_peers import SPOOFED_AMP
from paho.mqtt.packettypes import PacketTypes
from paho.mqtt.properties import Properties

from goe2mqtt.sim.broker import MosquittoBroker
from goe2mqtt.sim.simulator import SimulatedCharger


class ReusableClient(aiomqtt.Client):
    """aiomqtt's client, entered again after a lost connection: it must wait for the new
    CONNACK (aiomqtt keeps the old "connected" future)."""

    async def __aenter__(self) -> ReusableClient:
        if self._connected.done():
            self._connected = asyncio.Future()
        await super().__aenter__()
        return self


async def commander(
    broker: MosquittoBroker, targets: list[str], args: Any, deadline: float,
    sent: dict[str, float], results: Counter[str], outcomes: Counter[str],
    latency: dict[str, float], target_of: dict[str, str],
) -> None:  # fmt: skip
    props = Properties(PacketTypes.CONNECT)  # type: ignore[no-untyped-call]
    props.SessionExpiryInterval = 3600
    drain_until = deadline + args.drain
    # One client for every connection: paho keeps the QoS 2 state of results coming in.
    client = ReusableClient(
        broker.host, broker.port, identifier="chaos-commander",
        protocol=aiomqtt.ProtocolVersion.V5, clean_start=False, properties=props,
    )  # fmt: skip

    async def send_loop(client: aiomqtt.Client) -> None:
        while time.monotonic() < deadline:
            await asyncio.sleep(random.expovariate(1 / args.command_every))
            target = random.choice(targets)
            service, payload = random.choice(
                [("change_charging_power", {"charging_power": random.randint(6, 16)}),
                 ("set_phase", {"phase": random.randint(0, 2)}),
                 ("stop_charging", {}), ("start_charging", {}), ("wallbox_control", {})]
            )  # fmt: skip
            command_id = uuid.uuid4().hex[:12]
            body = json.dumps({**payload, "id": command_id})
            try:
                await client.publish(f"{BASE}/{target}/cmd/{service}", body, qos=1)
            except aiomqtt.MqttError:
                continue  # not acknowledged (broker frozen or gone): not counted as sent
            sent[command_id] = time.monotonic()  # the broker has it
            target_of[command_id] = target

    while time.monotonic() < drain_until:
        try:
            async with client:
                await client.subscribe(f"{BASE}/+/cmd/result", qos=2)
                sender = asyncio.create_task(send_loop(client))
                try:
                    async with asyncio.timeout(max(0.1, drain_until - time.monotonic())):
                        async for message in client.messages:
                            assert isinstance(message.payload, bytes)
                            result = json.loads(message.payload)
                            command_id = str(result.get("id"))
                            results[command_id] += 1
                            if command_id in sent and command_id not in latency:
                                latency[command_id] = time.monotonic() - sent[command_id]
                            outcome = "ok" if result["ok"] else str(result["error"])
                            outcomes[outcome.split(":")[0][:40]] += 1
                finally:
                    sender.cancel()
                    await asyncio.gather(sender, return_exceptions=True)
        except aiomqtt.MqttError:
            await asyncio.sleep(1)
        except TimeoutError:
            return


HUGE = "1" + "0" * 400  # JSON reads it; no float holds it


def hostile_message(target: str) -> tuple[str, bytes, bool, str | None]:
    """(topic, payload, retain, id or None): one thing a hostile or careless user sends."""
    hid = "h" + uuid.uuid4().hex[:11]
    cmd = f"{BASE}/{target}/cmd"
    choices: list[tuple[str, bytes, bool, str | None]] = [
        (f"{cmd}/change_charging_power", f'{{"charging_power": {HUGE}, "id": "{hid}"}}'.encode(),
         False, hid),
        (f"{cmd}/pv_feed", f'{{"pGrid": 100, "ts": {HUGE}, "id": "{hid}"}}'.encode(), False, hid),
        (f"{cmd}/set", f'{{"amp": 1e400, "id": "{hid}"}}'.encode(), False, hid),
        (f"{cmd}/set", f'{{"acp": 1, "id": "{hid}"}}'.encode(), False, hid),
        (f"{cmd}/pv_grid", f'{{"value": NaN, "id": "{hid}"}}'.encode(), False, hid),
        (f"{cmd}/set_phase", f'{{"phase": 1, "id": {HUGE}}}'.encode(), False, None),
        (f"{cmd}/pv_grid", HUGE.encode(), False, None),
        (f"{cmd}/stop_charging", b"x" * 100_000, False, None),  # refused: too large
        (f"{cmd}/stop_charging", b"y" * 2_000_000, False, None),  # the broker drops it
        (f"{cmd}/stop_charging", b"", True, None),  # clearing a retained command
        (f"{cmd}/start_charging", f'{{"id": "{hid}"}}'.encode(), True, hid),  # retained
    ]  # fmt: skip
    return random.choice(choices)


async def hostile(
    broker: MosquittoBroker, chargers: list[SimulatedCharger], every: float, deadline: float,
    sent: dict[str, float], counts: Counter[str],
) -> None:  # fmt: skip
    """A second client sending hostile input all the time (QoS 1, its own session)."""
    while time.monotonic() < deadline:
        try:
            async with aiomqtt.Client(
                broker.host, broker.port, identifier="chaos-hostile",
                protocol=aiomqtt.ProtocolVersion.V5, timeout=10,
            ) as client:  # fmt: skip
                while time.monotonic() < deadline:
                    await asyncio.sleep(random.expovariate(1 / every))
                    topic, payload, retain, hid = hostile_message(
                        f"c{random.choice(chargers).serial}"
                    )
                    await client.publish(topic, payload, qos=1, retain=retain)
                    counts["retained clear" if retain and not payload else
                           f"{topic.rsplit('/', 1)[-1]} {len(payload)} B"] += 1  # fmt: skip
                    if retain and payload:  # clear it again, as a careful user would
                        await client.publish(topic, b"", qos=1, retain=True)
                    if hid is not None:
                        sent[hid] = time.monotonic()
        except aiomqtt.MqttError:
            await asyncio.sleep(1)


async def bridge_online(broker: MosquittoBroker) -> None:
    async with aiomqtt.Client(broker.host, broker.port) as client:
        await client.subscribe(f"{BASE}/bridge/availability")
        async for message in client.messages:
            if message.payload == b"online":
                return


async def retained_json(broker: MosquittoBroker, topic: str) -> dict[str, Any] | None:
    """A retained JSON message, or None when there is none within 10 s."""
    with contextlib.suppress(TimeoutError, aiomqtt.MqttError, ValueError):
        async with asyncio.timeout(10), aiomqtt.Client(broker.host, broker.port) as client:
            await client.subscribe(topic)
            async for message in client.messages:
                assert isinstance(message.payload, bytes)
                value = json.loads(message.payload)
                return value if isinstance(value, dict) else None
    return None


async def watch_spoofed(broker: MosquittoBroker, counts: Counter[str]) -> None:
    """Counts the own-MQTT charger's current on MQTT, and how often it was the spoofer's."""
    while True:
        with contextlib.suppress(aiomqtt.MqttError):
            async with aiomqtt.Client(broker.host, broker.port) as client:
                await client.subscribe(f"{BASE}/hmq/charging_current")
                async for message in client.messages:
                    counts["published"] += 1
                    counts["spoofed"] += message.payload == str(SPOOFED_AMP).encode()
        await asyncio.sleep(1)
