"""How many QoS 1 and 2 publishes of ours await the broker's answer at once (MQTT 5).

The broker's CONNACK says how many it takes (Receive Maximum: Mosquitto's
max_inflight_messages, 20 by default; other brokers say less) and may disconnect a
client that sends more (reason 0x93). paho does not read it, and after a reconnect it
sends everything it holds at once, whatever its own max_inflight_messages. So on every
CONNACK the client's cap becomes min(our own, the broker's), what paho would send
beyond it stays queued, and paho's refill after each answer also sends the PUBRELs held
back that way. Nothing is dropped or sent twice: a message waits in paho's order until a
slot frees. Knows MQTT and nothing of go-e.
"""

from __future__ import annotations

import time
from typing import Any

import structlog
from paho.mqtt.client import (
    MQTT_ERR_SUCCESS,
    Client,
    mqtt_ms_publish,
    mqtt_ms_queued,
    mqtt_ms_resend_pubrel,
    mqtt_ms_wait_for_puback,
    mqtt_ms_wait_for_pubcomp,
    mqtt_ms_wait_for_pubrec,
)
from paho.mqtt.enums import MQTTErrorCode

log = structlog.get_logger()

# Ours, not paho's: a QoS 2 message whose PUBREL is owed after a reconnect but would pass
# the broker's limit; sent by the refill once a slot frees.
PUBREL_HELD = 100

# An MQTT 5 CONNACK without Receive Maximum means this.
UNLIMITED = 65535


class InFlight:
    """Keeps one paho client within the broker's Receive Maximum on every connection.
    ``connected(properties)`` must run in the CONNACK's callback (before paho sends what
    it owes from earlier connections)."""

    def __init__(self, paho: Client) -> None:
        self._paho = paho
        self.own = paho._max_inflight_messages or UNLIMITED  # paho: 0 is no maximum
        self.broker: int | None = None  # the last CONNACK's value, if it said one
        reset_out = paho._messages_reconnect_reset_out

        def messages_reconnect_reset_out() -> None:
            # A PUBREL held back is owed as paho's own "awaiting PUBCOMP" is: paho then
            # turns it into a PUBREL to send, never into a new PUBLISH. So is one still
            # owed from a connect that never reached its CONNACK: paho's reset turned
            # that into a PUBLISH again, without DUP, of a message the broker had taken.
            for message in paho._out_messages.values():
                if message.state in (PUBREL_HELD, mqtt_ms_resend_pubrel):
                    message.state = mqtt_ms_wait_for_pubcomp
            reset_out()

        paho._messages_reconnect_reset_out = messages_reconnect_reset_out  # type: ignore[method-assign]
        paho._update_inflight = self._refill  # type: ignore[method-assign]

    @property
    def cap(self) -> int:
        """How many may await an answer at once on this connection."""
        return self._paho._max_inflight_messages

    def connected(self, properties: Any) -> None:
        broker = getattr(properties, "ReceiveMaximum", None)
        self.broker = broker if isinstance(broker, int) and broker > 0 else None
        cap = self.own if self.broker is None else min(self.own, self.broker)
        if cap < self.own:
            log.info(
                "mqtt_receive_maximum", broker=self.broker, ours=self.own, in_flight_at_most=cap
            )
        self._paho._max_inflight_messages = cap
        self._hold_back(cap - self._paho._inflight_messages)

    def _hold_back(self, room: int) -> None:
        """Of what paho will send right after the CONNACK (owed from earlier connections,
        or published while none was up), the first ``room`` go; the rest are queued.
        paho stops its resend at the first queued message, so all of them are behind."""
        for message in self._paho._out_messages.values():
            if message.qos == 0 or message.state not in _OWED:
                continue
            if room > 0:
                room -= 1
                if message.state == mqtt_ms_queued:
                    message.state = mqtt_ms_publish  # paho sends it in its resend
            elif message.state == mqtt_ms_resend_pubrel:
                message.state = PUBREL_HELD  # type: ignore[assignment]
            else:
                message.state = mqtt_ms_queued

    def _refill(self) -> MQTTErrorCode:
        """paho's _update_inflight (after each PUBACK or PUBCOMP), in paho's order, for
        PUBRELs held back too; the clock of each starts when it is sent (unanswered_for)."""
        paho = self._paho
        for message in paho._out_messages.values():
            if paho._inflight_messages >= paho._max_inflight_messages:
                break
            if message.qos == 0 or message.state not in (mqtt_ms_queued, PUBREL_HELD):
                continue
            paho._inflight_messages += 1
            message.timestamp = time.monotonic()
            if message.state == PUBREL_HELD:
                message.state = mqtt_ms_wait_for_pubcomp
                rc = paho._send_pubrel(message.mid)
            else:
                message.state = (
                    mqtt_ms_wait_for_puback if message.qos == 1 else mqtt_ms_wait_for_pubrec
                )
                rc = paho._send_publish(
                    message.mid,
                    message.topic.encode("utf-8"),
                    message.payload,
                    message.qos,
                    message.retain,
                    message.dup,
                    properties=message.properties,
                )
            if rc != MQTT_ERR_SUCCESS:
                return rc
        return MQTT_ERR_SUCCESS


# What paho sends (or queues) when a connection is up: not yet out on this one.
_OWED = frozenset({mqtt_ms_publish, mqtt_ms_queued, mqtt_ms_resend_pubrel, PUBREL_HELD})
