"""What a broker error is called in the log: each paho and aiomqtt text to its cause."""

from __future__ import annotations

import pytest
from aiomqtt import MqttCodeError, MqttError
from aiomqtt.exceptions import MqttConnectError
from paho.mqtt.packettypes import PacketTypes
from paho.mqtt.reasoncodes import ReasonCode

from goe2mqtt.mqtt.client import connect_cause

AUTH = "auth: the broker refused the user name or password"


def _connack(code: int) -> ReasonCode:
    return ReasonCode(PacketTypes.CONNACK, identifier=code)


@pytest.mark.parametrize(
    ("error", "cause"),
    [
        # paho 2 reports a refused CONNACK by its MQTT 5 reason, for 3.1.1 as well.
        (MqttConnectError(_connack(134)), AUTH),
        (MqttConnectError(_connack(135)), AUTH),
        # paho's own error numbers: [code:4] is "not connected", never a password.
        (MqttCodeError(4), "lost: the connection ended under us"),
        (MqttCodeError(7), "lost: the connection ended under us"),
        (MqttCodeError(5), "refused: the broker turned the connection down"),
        (MqttCodeError(16), "timeout: the broker went silent"),
        (MqttError("[Errno 111] Connection refused"), "refused: nothing listens"),
        (MqttError("timed out"), "timeout: no answer in time"),
        (MqttError("something new"), "other"),
    ],
)
def test_each_broker_error_is_named_for_what_happened(error: MqttError, cause: str) -> None:
    assert connect_cause(error).startswith(cause), str(error)
