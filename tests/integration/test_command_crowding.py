"""No charger stream can crowd out a command (issue 27, item 3), shown without a clock.

A broker keeps a bounded queue per client (Mosquitto: max_queued_messages) for a client
that does not read fast enough, and drops what does not fit ("Outgoing messages are
being dropped for client"). When the charger's own topics shared the bridge's session,
a flood on them filled that queue, and the commands sent behind it were dropped. Here
the bridge stops reading for a moment (its event loop held, as a long stall would),
while a publisher floods the charger's topics and then sends QoS 1 commands: the
commands must all get their result once the bridge reads again.
"""

from __future__ import annotations

import json
import threading
import uuid
from collections.abc import Iterator

import paho.mqtt.client as paho
import pytest

from goe2mqtt.config.settings import parse_settings
from goe2mqtt.mqtt.topics import Topics
from goe2mqtt.sim.broker import MosquittoBroker
from tests.conftest import SERIALS, MqttProbe, RunningBridge, until
from tests.integration.test_charger_mqtt import charger_on_mqtt

SERIAL = SERIALS["garage"]
QUEUE = 100  # messages Mosquitto queues for a client that does not read
FLOOD = 5 * QUEUE
COMMANDS = 6


@pytest.fixture
def small_queue_broker() -> Iterator[MosquittoBroker]:
    with MosquittoBroker(extra_config=(f"max_queued_messages {QUEUE}",)) as running:
        yield running


def _flood_then_command(broker: MosquittoBroker, topics: Topics, done: threading.Event) -> None:
    """In a thread of its own: it runs while the bridge's event loop is held."""
    client = paho.Client(paho.CallbackAPIVersion.VERSION2, client_id="flood-then-command")
    client.connect(broker.host, broker.port)
    client.loop_start()
    try:
        junk = json.dumps("y" * 60_000)
        for n in range(FLOOD):
            client.publish(f"go-eCharger/{SERIAL}/{('nrg', 'amp', 'car')[n % 3]}", junk)
        for n in range(COMMANDS):
            body = json.dumps({"charging_power": 6 + n % 10, "id": f"c{n}"})
            info = client.publish(topics.command("garage", "change_charging_power"), body, 1)
            info.wait_for_publish(30)  # the broker has it: from here it is the bridge's
    finally:
        client.loop_stop()
        client.disconnect()
        done.set()


async def test_a_flood_while_the_bridge_stalls_drops_no_command(
    small_queue_broker: MosquittoBroker,
) -> None:
    broker = small_queue_broker
    own = uuid.uuid4().hex[:8]
    settings = parse_settings({
        "mqtt": {"host": broker.host, "port": broker.port, "client_id": f"goe2mqtt-{own}",
                 "base_topic": f"c{own}", "keepalive": 60},
        "chargers": [{"name": "garage", "serial": SERIAL, "transport": "mqtt"}],
    })  # fmt: skip
    topics = Topics(settings.mqtt.base_topic)
    running = RunningBridge(settings)
    async with (
        charger_on_mqtt(broker),
        MqttProbe(broker.host, broker.port, [topics.command("garage", "result")]) as probe,
    ):
        await running.start()
        try:
            chargers = running.bridge.chargers
            await until(
                lambda: "garage" in chargers and chargers["garage"].availability.online, "online"
            )
            done = threading.Event()
            sender = threading.Thread(
                target=_flood_then_command, args=(broker, topics, done), daemon=True
            )
            sender.start()
            # Hold the loop (the bridge reads nothing) until every command is with the
            # broker, behind the flood: what a stall of the process does.
            done.wait(120)
            assert done.is_set(), "the publisher finished"
            await until(lambda: len(probe.messages) >= COMMANDS, f"{COMMANDS} results", within=120)
        finally:
            await running.stop()
    ids = sorted(m.json()["id"] for m in probe.messages)
    assert ids == sorted(f"c{n}" for n in range(COMMANDS))
