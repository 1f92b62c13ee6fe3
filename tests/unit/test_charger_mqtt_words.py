"""What the Connection sensor says of a charger on its own MQTT before it is live."""

from __future__ import annotations

from goe2mqtt.goe.charger_mqtt import ChargerMqttTransport
from goe2mqtt.goe.pushed import KeyFilter


async def _send(topic: str, payload: bytes) -> None:
    raise AssertionError(f"nothing is written here: {topic}")


def _transport() -> ChargerMqttTransport:
    return ChargerMqttTransport(
        "067890", "go-eCharger", name="carport", send=_send, keys=KeyFilter({"car", "amp"})
    )


def test_nothing_heard_asks_whether_the_chargers_mqtt_is_on() -> None:
    assert _transport().connection == (
        "none (mqtt: nothing heard on go-eCharger/067890/+ yet: is the charger's MQTT (mce)"
        " on, with this broker (mcu) and prefix (mtp)?)"
    )


def test_heard_but_only_keys_not_read_does_not_send_the_user_to_the_apps_settings() -> None:
    """The charger's clock (rbt) every second, the rest of its keys now and then: its MQTT
    is on and the prefix right; 'nothing heard' sent users to check mce, mcu and mtp."""
    transport = _transport()
    transport.take("go-eCharger/067890/rbt", b"99444")
    assert transport.connection == (
        "none (mqtt: heard on go-eCharger/067890/+, but no key goe2mqtt reads yet: the"
        " charger publishes every key now and then)"
    )
    transport.take("go-eCharger/067890/car", b"1")
    assert transport.connection == "mqtt"
