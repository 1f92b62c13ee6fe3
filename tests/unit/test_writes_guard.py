"""The joined writer (mqtt/writes.py) uses parts of paho's client that are not its public
API; a paho release without one of them is written to as aiomqtt writes, unjoined,
rather than failing at the first publish."""

from __future__ import annotations

import pytest
from structlog.testing import capture_logs

from goe2mqtt.mqtt import writes
from goe2mqtt.mqtt.client import MqttOptions
from goe2mqtt.mqtt.session_client import new_client
from goe2mqtt.mqtt.writes import JoinedWriter


async def test_this_paho_has_every_part_and_its_writes_are_joined() -> None:
    client = new_client(MqttOptions(host="127.0.0.1"))
    assert isinstance(client._writes, JoinedWriter)
    assert client._client.on_socket_register_write == client._writes._register


async def test_a_paho_without_a_part_is_written_to_unjoined(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(writes, "PAHO_PARTS", (*writes.PAHO_PARTS, "_gone_in_a_new_release"))
    with capture_logs() as logs:
        client = new_client(MqttOptions(host="127.0.0.1"))
    assert client._writes is None
    # aiomqtt's own callback stays: every packet still leaves, one send() each.
    registered = client._client.on_socket_register_write
    assert registered is not None
    assert getattr(registered, "__self__", None) is client
    assert [entry["event"] for entry in logs] == ["mqtt_writes_unjoined"]
