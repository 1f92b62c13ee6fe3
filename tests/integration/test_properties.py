"""Property tests: whatever arrives from MQTT or the cloud, the bridge answers and lives."""

from __future__ import annotations

import json
import random
import time
from typing import Any

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from goe2mqtt.catalogue import ENTITIES, STATUS_KEYS, format_state, read_states, reported_keys
from goe2mqtt.catalogue.facts import DeviceFacts
from goe2mqtt.charger.loop import Charger
from goe2mqtt.commands.outcomes import QueuedCommand, RepeatFilter, rejection
from goe2mqtt.commands.payloads import CommandError
from goe2mqtt.commands.services import SERVICES, parse_delivered
from goe2mqtt.homeassistant.discovery import render_discovery
from goe2mqtt.mqtt.topics import Topics
from goe2mqtt.sim.broker import MosquittoBroker
from goe2mqtt.sim.simulator import SimulatedCharger

from ..conftest import MqttProbe, RecordingPublisher, RunningBridge, Setup, until

SERVICE_NAMES = [s.name for s in SERVICES]

json_values = st.recursive(
    st.none()
    | st.booleans()
    | st.integers(min_value=-(2**70), max_value=2**70)
    | st.floats(allow_nan=True, allow_infinity=True)
    | st.text(max_size=20),
    lambda children: (
        st.lists(children, max_size=5) | st.dictionaries(st.text(max_size=8), children, max_size=5)
    ),
    max_leaves=20,
)
# Status documents: the keys we read, with anything at all as their values.
statuses = st.dictionaries(
    st.sampled_from(sorted(STATUS_KEYS)) | st.text(max_size=6), json_values, max_size=40
)
# Command payloads: raw bytes, and JSON that looks almost right.
payloads = st.one_of(
    st.binary(max_size=300),
    st.text(max_size=100).map(str.encode),
    st.dictionaries(
        st.sampled_from(["charging_power", "phase", "status", "id", "ts", "x"]),
        json_values,
        max_size=4,
    ).map(lambda d: json.dumps(d).encode()),
    json_values.map(lambda v: json.dumps(v).encode()),
    st.just(b"[" * 5000),
)


@given(statuses)
def test_any_status_maps_to_states_without_raising(status: dict[str, Any]) -> None:
    states, problems = read_states(status)
    keys = reported_keys(status)
    assert set(states) == {e.key for e in ENTITIES if e.value is not None and e.present(keys)}
    assert set(problems) <= set(states)
    for key in problems:
        assert states[key] is None
    for value in states.values():
        assert isinstance(format_state(value), str)
    json.dumps(states)  # the JSON state topic can always be written
    facts = DeviceFacts.from_status(status)
    configs, _ = render_discovery(
        prefix="homeassistant", topics=Topics("goe2mqtt"), charger="c", serial="012345", facts=facts
    )
    for payload in configs.values():
        json.loads(payload)


@settings(
    max_examples=300,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
@given(
    service=st.sampled_from(SERVICE_NAMES) | st.text(max_size=12),
    raw=payloads,
    retained=st.booleans(),
)
async def test_any_command_payload_gets_one_answer_and_only_valid_calls(
    polled_charger: tuple[Charger, SimulatedCharger, RecordingPublisher],
    service: str,
    raw: bytes,
    retained: bool,
) -> None:
    bridge, simulated, _ = polled_charger
    calls_before = len(simulated.set_calls)
    command = QueuedCommand(1, "garage", service, raw, retained, time.time())
    try:  # as the desk takes it: parsed on arrival, refused there if it could never run
        parsed = parse_delivered(service, raw, retained=retained)
    except CommandError as exc:
        result = rejection(command, str(exc), RepeatFilter())
    else:
        result = await bridge.runner.execute(command, parsed)

    json.dumps(result)  # it can always go on the result topic
    assert result["service"] == service
    assert isinstance(result["ok"], bool)
    new_calls = simulated.set_calls[calls_before:]
    # What reached the charger is exactly what the result reports as applied, and the
    # simulator's own checks accepted every value: invalid input never got through.
    assert new_calls == result.get("applied", [])
    for call in new_calls:
        for key, value in call.items():
            assert simulated._check(key, value) is None, call
    if not result["ok"]:
        assert result["error"]
    if retained or service not in SERVICE_NAMES:
        assert new_calls == []
        assert result["ok"] is False


async def test_random_payloads_on_every_command_topic_get_one_result_each(
    setup: Setup, probe: MqttProbe, bridge: RunningBridge, broker: MosquittoBroker
) -> None:
    """Through Mosquitto: one result per command, whatever the bytes."""
    rng = random.Random(20261124)
    sent = 0
    mark = probe.mark()
    garage = setup.charger("garage")
    for service in [*SERVICE_NAMES, "nonsense", "cmd"]:
        for _ in range(6):
            size = rng.choice([0, 1, 5, 40, 400])
            raw = bytes(rng.randrange(256) for _ in range(size))
            await probe.publish(setup.cmd("garage", service), raw)
            sent += 1
    await probe.publish(setup.cmd("garage", "set_phase"), b"1" * 5000)  # over 4 KiB
    sent += 1
    await until(
        lambda: len(probe.since(mark, setup.topics.result("garage"))) >= sent, "every result"
    )
    results = [m.json() for m in probe.since(mark, setup.topics.result("garage"))]
    assert len(results) == sent
    assert any(r.get("error") == "payload of 5000 bytes is larger than 4096 bytes" for r in results)
    assert garage.set_calls == [c for r in results for c in r.get("applied", [])]
    assert bridge.bridge.chargers["garage"].availability.online
