"""The broker's Receive Maximum on a paho client (mqtt/in_flight.py), where no broker is
needed to see it: what paho owes after a reconnect, QoS 2 PUBRELs among it, held back
beyond the limit and sent as slots free; MQTT 3.1.1 untouched. The whole path against a
real broker: tests/integration/test_receive_maximum.py."""

from __future__ import annotations

import aiomqtt
import paho.mqtt.client as mqtt
from paho.mqtt.enums import CallbackAPIVersion
from paho.mqtt.packettypes import PacketTypes
from paho.mqtt.properties import Properties

from goe2mqtt.mqtt.client import MqttOptions
from goe2mqtt.mqtt.in_flight import PUBREL_HELD, InFlight
from goe2mqtt.mqtt.session_client import new_client

PUBREL = 0x62  # the fixed header's first byte


def _owed(paho: mqtt.Client, mid: int, qos: int, state: mqtt.MessageState) -> mqtt.MQTTMessage:
    message = mqtt.MQTTMessage(mid, f"t/{mid}".encode())
    message.payload, message.qos, message.state = b"x", qos, state
    paho._out_messages[mid] = message
    return message


def _connack(receive_maximum: int | None) -> Properties:
    properties = Properties(PacketTypes.CONNACK)  # type: ignore[no-untyped-call]
    if receive_maximum is not None:
        properties.ReceiveMaximum = receive_maximum
    return properties


def test_what_is_owed_beyond_the_limit_waits_pubrels_too() -> None:
    paho = mqtt.Client(CallbackAPIVersion.VERSION2, protocol=mqtt.MQTTv5)
    paho._clean_start = False  # the broker keeps our session: PUBRELs are owed
    paho.max_inflight_messages = 32
    in_flight = InFlight(paho)
    pubrels = [_owed(paho, mid, 2, mqtt.mqtt_ms_resend_pubrel) for mid in (1, 2, 3)]
    publish = _owed(paho, 4, 1, mqtt.mqtt_ms_publish)

    in_flight.connected(_connack(2))

    assert in_flight.cap == 2
    assert [m.state for m in pubrels] == [mqtt.mqtt_ms_resend_pubrel] * 2 + [PUBREL_HELD]
    assert publish.state == mqtt.mqtt_ms_queued
    # paho's resend after the CONNACK: the first two (a held one is never a new PUBLISH).
    paho._inflight_messages = 2
    pubrels[0].state = pubrels[1].state = mqtt.mqtt_ms_wait_for_pubcomp
    paho._out_messages.pop(1)  # PUBCOMP: a slot frees
    paho._inflight_messages -= 1
    paho._update_inflight()
    assert pubrels[2].state == mqtt.mqtt_ms_wait_for_pubcomp  # its PUBREL went
    assert publish.state == mqtt.mqtt_ms_queued  # no slot left for it
    assert [p[0] for p in [bytes(packet["packet"]) for packet in paho._out_packet]] == [PUBREL]


def test_a_held_pubrel_is_owed_as_a_pubrel_on_the_next_connection() -> None:
    paho = mqtt.Client(CallbackAPIVersion.VERSION2, protocol=mqtt.MQTTv5)
    paho._clean_start = False
    in_flight = InFlight(paho)
    held = _owed(paho, 7, 2, PUBREL_HELD)  # type: ignore[arg-type]
    paho._messages_reconnect_reset_out()
    assert held.state == mqtt.mqtt_ms_resend_pubrel
    in_flight.connected(_connack(None))  # no Receive Maximum: our own cap
    assert in_flight.cap == 20
    assert held.state == mqtt.mqtt_ms_resend_pubrel


async def test_mqtt_3_1_1_is_left_as_it_was() -> None:
    client = new_client(MqttOptions(host="127.0.0.1", protocol="3.1.1"))
    assert client._in_flight is None
    assert client.in_flight_cap == 32
    paho = client._client
    assert paho._protocol == aiomqtt.ProtocolVersion.V311


def test_a_pubrel_owed_through_a_connect_that_never_came_up_stays_a_pubrel() -> None:
    """Found in review: a QoS 2 message the broker had taken (PUBREC) is owed as our
    PUBREL after a reconnect. Should that connect never reach its CONNACK (the broker
    restarting, the 10 s connect timeout), paho's reset at the next attempt turned
    "PUBREL owed" into "PUBLISH again", without DUP: a broker that keeps the packet id
    answers a failing PUBREC (EMQX: 0x91, in use) and the result counted as refused."""
    paho = mqtt.Client(CallbackAPIVersion.VERSION2, protocol=mqtt.MQTTv5)
    paho._clean_start = False  # the broker keeps our session
    InFlight(paho)
    taken = _owed(paho, 9, 2, mqtt.mqtt_ms_wait_for_pubcomp)
    paho._messages_reconnect_reset_out()  # the connect whose CONNACK never came
    assert taken.state == mqtt.mqtt_ms_resend_pubrel
    paho._messages_reconnect_reset_out()  # the next one
    assert taken.state == mqtt.mqtt_ms_resend_pubrel
