"""A charger heard in part at first (its own MQTT between two full publishes): the
bridge announces what every API v2 firmware has and never a zero-length message, however
the next full publish is cut into merged pieces (issue 28, item 3)."""

from __future__ import annotations

import json
from collections.abc import Iterable
from typing import Any

from goe2mqtt.catalogue import BASELINE_KEYS, ENTITIES, keep_known
from goe2mqtt.catalogue.facts import DeviceFacts
from goe2mqtt.charger.publish import ChargerOutput
from goe2mqtt.mqtt.topics import Topics
from goe2mqtt.sim.simulator import SimulatedCharger
from tests.conftest import RecordingPublisher

SERIAL = "012345"


class EveryMessage(RecordingPublisher):
    """Retained as the broker keeps them, and every message as a subscriber saw it."""

    def __init__(self) -> None:
        super().__init__()
        self.sent: list[tuple[str, bytes]] = []

    async def publish_retained(
        self, topic: str, payload: str | bytes, *, vouches: Iterable[str] = ()
    ) -> None:
        await super().publish_retained(topic, payload, vouches=vouches)
        self.sent.append((topic, self.retained[topic]))


def output() -> tuple[ChargerOutput, EveryMessage, list[DeviceFacts]]:
    publisher = EveryMessage()
    remembered: list[DeviceFacts] = []
    out = ChargerOutput("garage", publisher, topics=Topics("goe2mqtt"),
                        discovery_prefix="homeassistant", leaf_topics=True,
                        on_facts=remembered.append)  # fmt: skip
    return out, publisher, remembered


def announced(publisher: RecordingPublisher) -> set[str]:
    return {
        json.loads(payload)["unique_id"].split("_", 2)[2]
        for topic, payload in publisher.retained.items()
        if topic.startswith("homeassistant/") and payload
    }


def full_status() -> dict[str, Any]:
    charger = SimulatedCharger(SERIAL)
    charger.plug_in()
    return keep_known(charger.status())


async def test_heard_in_part_then_whole_in_pieces_announces_and_never_clears() -> None:
    out, publisher, remembered = output()
    full = full_status()
    part = {"wh": full["wh"], "nrg": full["nrg"]}  # what changes while a car charges
    baseline = {e.key for e in ENTITIES if e.present(BASELINE_KEYS)}

    await out.take(part, None, SERIAL)
    assert baseline <= announced(publisher)
    assert publisher.retained["goe2mqtt/garage/firmware"] == b"null"  # unknown, not empty
    assert remembered == []  # part of a picture is not the charger's word on its keys

    # The next full publish, merged in two pieces: every baseline key first, the rest later.
    first_piece = {k: v for k, v in full.items() if k in BASELINE_KEYS or k in part}
    await out.take(first_piece, None, SERIAL)
    await out.take(full, None, SERIAL)

    assert [topic for topic, payload in publisher.sent if not payload] == []
    assert announced(publisher) == {e.key for e in ENTITIES}
    assert remembered[-1].keys == DeviceFacts.from_status(full).keys
    assert publisher.retained["goe2mqtt/garage/firmware"] == full["fwv"].encode()


async def test_a_whole_first_answer_still_clears_what_the_charger_lacks() -> None:
    """Polled, the first answer is whole: what an earlier run may have announced for keys
    this charger lacks is cleared at first contact, as before."""
    out, publisher, _ = output()
    full = full_status()
    del full["upo"]
    await out.take(full, None, SERIAL)
    cleared = {topic for topic, payload in publisher.sent if not payload}
    assert "homeassistant/switch/goe2mqtt/garage_unlock_on_power_outage/config" in cleared
