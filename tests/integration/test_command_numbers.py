"""A set read back as a number no float holds. The command went out; the read-back's
comparison made a float of the charger's value (the float32 tolerance) and raised
OverflowError: the result was "internal error: OverflowError", with a traceback in the
log and without what was applied, for a set the charger had been sent."""

from __future__ import annotations

import json

import pytest

from goe2mqtt.sim.charger import SimulatedCharger
from goe2mqtt.util.numbers import MAX_EXACT_INTEGER

from ..conftest import MqttProbe, RunningBridge, Setup


def numbers_in(value: object) -> list[int | float]:
    if isinstance(value, dict):
        return [n for v in value.values() for n in numbers_in(v)]
    if isinstance(value, list):
        return [n for v in value for n in numbers_in(v)]
    if isinstance(value, int | float) and not isinstance(value, bool):
        return [value]
    return []


@pytest.mark.parametrize("shown", [10**400, -(2**60)], ids=["400_digits", "minus_2_to_60"])
async def test_a_read_back_no_float_holds_is_not_confirmed_not_an_internal_error(
    setup: Setup, probe: MqttProbe, shown: int
) -> None:
    garage = setup.charger("garage")
    garage.faults.values = {"pgt": shown}  # what every read of the charger shows
    bridge = RunningBridge(setup.settings)
    await bridge.start()
    try:
        await probe.wait_text(setup.topics.availability("garage"), "online")
        # The catalogue refused the value: the bridge has read it.
        await probe.wait_text(setup.state("garage", "grid_target"), "null")
        await _set_and_go_on(setup, probe, garage)
    finally:
        await bridge.stop()


async def _set_and_go_on(setup: Setup, probe: MqttProbe, garage: SimulatedCharger) -> None:

    topic = setup.cmd("garage", "grid_target")
    result = await probe.command(topic, json.dumps({"value": 123.4, "id": "g1"}))
    assert result["error"] == "not confirmed", result
    assert result["ok"] is False
    assert result["id"] == "g1"
    assert result["applied"] == [{"pgt": 123.4}]
    assert garage.set_calls[-1] == {"pgt": 123.4}
    assert result["unconfirmed"]["pgt"]["expected"] == 123.4
    # Whatever the result says the charger showed, a JavaScript reader can hold it.
    assert all(abs(n) <= MAX_EXACT_INTEGER for n in numbers_in(result)), result

    # The bridge goes on: the next command runs and is confirmed.
    garage.faults.values = {}
    result = await probe.command(topic, json.dumps({"value": 100, "id": "g2"}))
    assert result == {"service": "grid_target", "ok": True, "id": "g2", "applied": [{"pgt": 100}]}
