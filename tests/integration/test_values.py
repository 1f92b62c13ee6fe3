"""What a charger says is published only as far as it can be true: a number beyond what
a charger measures is unknown (logged once), a text has no control characters and fits
Home Assistant's 255 characters - on the leaf topics, in the JSON state and in discovery
(issue 27, item 14)."""

from __future__ import annotations

import json
import unicodedata

import structlog

from tests.conftest import MqttProbe, RunningBridge, Setup, until

# NUL, ESC (a terminal escape), right-to-left override and isolate, a zero-width space,
# then far more than Home Assistant keeps.
NAME = "Garage\x00\x1b[2J\u202eegaraG\u2066\u200b" + "x" * 100_000
MAX_STATE_LENGTH = 255  # Home Assistant's limit for a state
FIRMWARE = "60.1\x00\x1b\u202e-evil\u2069"


def clean(text: str) -> bool:
    return not any(unicodedata.category(c) in ("Cc", "Cf", "Zl", "Zp", "Cs") for c in text)


async def test_an_impossible_power_is_unknown_and_hostile_texts_arrive_clean(
    setup: Setup, probe: MqttProbe
) -> None:
    garage = setup.charger("garage")
    nrg = garage.status()["nrg"]
    nrg[11] = 1e308  # the charging power: a charger does not deliver 10**308 W
    garage.faults.values.update({"nrg": nrg, "fna": NAME, "fwv": FIRMWARE})
    running = RunningBridge(setup.settings)
    with structlog.testing.capture_logs() as logs:
        await running.start()
        try:
            await probe.wait_text(setup.topics.availability("garage"), "online")
            polls = garage.status_calls
            await until(lambda: garage.status_calls >= polls + 3, "three more polls")
            await probe.wait_for(setup.state("garage", "name"))
        finally:
            await running.stop()

    expected_name = ("Garage[2JegaraG" + "x" * 100_000)[:MAX_STATE_LENGTH]
    expected_firmware = "60.1-evil"
    assert probe.last_text(setup.state("garage", "charging_power")) == "null"
    assert probe.last_text(setup.state("garage", "name")) == expected_name
    assert probe.last_text(setup.state("garage", "firmware")) == expected_firmware
    state = json.loads(probe.last_text(setup.topics.json_state("garage")) or "{}")
    assert state["charging_power"] is None
    assert (state["name"], state["firmware"]) == (expected_name, expected_firmware)
    assert state["voltage_l1"] == nrg[0]  # the sane values of the same array still show

    configs = [
        m.json() for m in probe.messages
        if m.topic.startswith(f"{setup.prefix}/") and "/garage_" in m.topic and m.payload
    ]  # fmt: skip
    assert configs
    assert {c["device"]["sw_version"] for c in configs} == {expected_firmware}
    for message in probe.messages:
        text = message.payload.decode()
        assert clean(text), (message.topic, text[:80])
        if message.topic.startswith(f"{setup.topics.base}/garage/") and not text.startswith("{"):
            assert len(text) <= MAX_STATE_LENGTH, message.topic

    unreadable = [
        e for e in logs
        if e["event"] == "value_unreadable" and e.get("charger") == "garage"
    ]  # fmt: skip
    assert [e["entity"] for e in unreadable] == ["charging_power"]  # once, not per poll
    assert "beyond what a charger measures" in unreadable[0]["reason"]


HUGE_CODES = {"rbc": 1e300, "lbr": -1e300, "err": 1e300, "trx": 1e300, "pnp": 2**53}
SANE_CODES = {"rbc": 7, "lbr": 255, "err": 0, "trx": None, "pnp": 3}


async def test_a_code_or_count_beyond_32_bits_is_unknown_and_logged_once_however_it_flips(
    setup: Setup, probe: MqttProbe
) -> None:
    """Integers with no unit (codes, counts, settings) are bounded too: int(1e300) would
    reach MQTT as 301 digits, or as code_1000... in a label. And a value that flips
    between garbage and sense is logged once per entity, not once per flip."""
    garage = setup.charger("garage")
    garage.faults.values.update(HUGE_CODES)
    entities = ("reboots", "led_brightness", "error", "transaction", "phases_number_connected")
    running = RunningBridge(setup.settings)
    with structlog.testing.capture_logs() as logs:
        await running.start()
        try:
            await probe.wait_text(setup.topics.availability("garage"), "online")
            for entity in entities:
                await probe.wait_text(setup.state("garage", entity), "null")
            for flip in range(4):  # garbage, sense, garbage, sense ... each seen by a poll
                garage.faults.values.update(SANE_CODES if flip % 2 == 0 else HUGE_CODES)
                running.bridge.chargers["garage"].poll_soon()
                expected = "7" if flip % 2 == 0 else "null"
                await probe.wait_text(setup.state("garage", "reboots"), expected)
        finally:
            await running.stop()

    for message in probe.messages:
        assert len(message.payload) < 64 or message.payload.startswith(b"{"), message.topic
    unreadable = [
        e["entity"] for e in logs
        if e["event"] == "value_unreadable" and e["log_level"] == "warning"
    ]  # fmt: skip
    assert sorted(unreadable) == sorted(entities)  # once each, though it came back twice
