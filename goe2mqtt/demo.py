"""`goe2mqtt demo`: simulator + broker + bridge, with the topic stream printed live.

A newcomer sees discovery, states, a command and its result within seconds,
without a charger, a cloud account or a broker of their own.
"""

from __future__ import annotations

import asyncio
import json
import sys
from typing import Literal, TextIO

import aiomqtt

from goe2mqtt.bridge import Bridge
from goe2mqtt.broker import BrokerUnavailable, EmbeddedBroker, MosquittoBroker
from goe2mqtt.config import parse_settings
from goe2mqtt.simulator import SimulatedCharger, Simulator

DEMO_CHARGERS = (("garage", "000001"), ("carport", "000002"))
DEMO_TOKEN = "demo-token"  # the simulator's, not a real cloud key


BrokerKind = Literal["auto", "amqtt", "mosquitto"]


def choose_broker(kind: BrokerKind) -> Literal["amqtt", "mosquitto"]:
    """auto: amqtt when the [demo] extra is installed, else a private Mosquitto."""
    if kind == "auto":
        return "amqtt" if EmbeddedBroker.available() else "mosquitto"
    if kind == "amqtt" and not EmbeddedBroker.available():
        raise BrokerUnavailable("amqtt is not installed: pip install 'goe2mqtt[demo]'")
    return kind


def _short(payload: bytes, width: int = 110) -> str:
    text = payload.decode("utf-8", errors="replace")
    return text if len(text) <= width else text[: width - 1] + "…"


async def _print_stream(host: str, port: int, base: str, out: TextIO) -> None:
    async with aiomqtt.Client(host, port, identifier="goe2mqtt-demo-viewer") as client:
        await client.subscribe(f"{base}/#")
        await client.subscribe("homeassistant/+/goe2mqtt/+/config")
        async for message in client.messages:
            print(f"{message.topic.value:<60} {_short(message.payload)}", file=out, flush=True)


async def _script(host: str, port: int, simulator: Simulator, out: TextIO, pace: float) -> None:
    """What a user would do: plug in a car, press the button, change the current."""
    garage = simulator.charger(DEMO_CHARGERS[0][1])
    async with aiomqtt.Client(host, port, identifier="goe2mqtt-demo-user") as client:
        steps: list[tuple[float, str, str | None, str]] = [
            (4, "a car is plugged in at the garage (authentication required)", None, ""),
            (
                4,
                "pressing 'Wallbox control' (authenticates, charging starts)",
                "goe2mqtt/garage/cmd/wallbox_control",
                "PRESS",
            ),
            (
                6,
                "changing the charging current to 10 A",
                "goe2mqtt/garage/cmd/change_charging_power",
                json.dumps({"charging_power": 10, "id": "demo-1"}),
            ),
            (
                6,
                "a bad command: 99 A is out of range",
                "goe2mqtt/garage/cmd/change_charging_power",
                "99",
            ),
            (6, "stopping the charge", "goe2mqtt/garage/cmd/stop_charging", ""),
        ]
        for delay, title, topic, payload in steps:
            await asyncio.sleep(delay * pace)
            print(f"\n--- {title}", file=out, flush=True)
            if topic is None:
                garage.plug_in(auth_required=True)
            else:
                await client.publish(topic, payload, qos=1)


async def run_demo(
    *,
    mqtt_host: str | None,
    mqtt_port: int,
    duration: float | None,
    out: TextIO = sys.stdout,
    pace: float = 1.0,
    broker_kind: BrokerKind = "auto",
) -> None:
    """Run until ``duration`` (or forever); ``pace`` scales the script's pauses."""
    embedded: EmbeddedBroker | None = None
    mosquitto: MosquittoBroker | None = None
    protocol = "5"
    if mqtt_host is not None:
        host, port = mqtt_host, mqtt_port
    elif choose_broker(broker_kind) == "amqtt":
        embedded = EmbeddedBroker()
        await embedded.start()
        host, port, protocol = embedded.host, embedded.port, "3.1.1"  # amqtt has no MQTT 5
        print(f"--- started an embedded MQTT broker (amqtt) on {host}:{port}", file=out)
    else:
        mosquitto = MosquittoBroker()
        mosquitto.start()
        host, port = mosquitto.host, mosquitto.port
        print(f"--- started a private Mosquitto on {host}:{port}", file=out)
    simulator = Simulator(SimulatedCharger(serial, DEMO_TOKEN) for _, serial in DEMO_CHARGERS)
    await simulator.start()
    settings = parse_settings(
        {
            "mqtt": {
                "host": host,
                "port": port,
                "client_id": "goe2mqtt-demo",
                "protocol": protocol,
            },
            "chargers": [
                {
                    "name": name,
                    "serial": serial,
                    "token": DEMO_TOKEN,
                    "api_url": simulator.url_for(serial),
                    "scan_interval": 2 * pace,  # the script waits 4 units after a change
                }
                for name, serial in DEMO_CHARGERS
            ],
        }
    )
    print(f"--- simulated go-e cloud at {simulator.base_url}; Ctrl-C to stop\n", file=out)
    bridge = Bridge(settings)
    tasks = [
        asyncio.create_task(bridge.run()),
        asyncio.create_task(_print_stream(host, port, settings.mqtt.base_topic, out)),
        asyncio.create_task(_script(host, port, simulator, out, pace)),
    ]
    try:
        await asyncio.wait({tasks[0]}, timeout=duration)
    finally:
        bridge.request_stop()
        await asyncio.wait({tasks[0]}, timeout=10)
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        await simulator.stop()
        if mosquitto is not None:
            mosquitto.close()
        if embedded is not None:
            await embedded.stop()
