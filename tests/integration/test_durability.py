"""Commands that never vanish: SIGTERM, kill -9 and a dead broker, through a real Mosquitto.

Every command the broker delivered ends with exactly one result, none reaches the
charger twice, and a command cut off after its set went out says so.
"""

from __future__ import annotations

import asyncio
import json
import os
import signal
import sys
from collections import Counter
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from goe2mqtt.bridge.startup import journal_path
from goe2mqtt.commands.journal import PUBLISHED, Journal
from goe2mqtt.config.settings import parse_settings
from goe2mqtt.mqtt.topics import Topics
from goe2mqtt.sim.broker import MosquittoBroker, free_port
from goe2mqtt.sim.simulator import Faults, Simulator

from ..conftest import (
    PROCESS_WAIT,
    WAIT,
    Daemon,
    MqttProbe,
    RunningBridge,
    garage_bridge,
    make_settings,
    until,
)
from ..conftest import write_config as _write_config

SLOW_SET = Faults(delay=0.6, only="set")  # each set takes a while: commands queue up


def _results(probe: MqttProbe, topic: str) -> list[dict[str, Any]]:
    return [m.json() for m in probe.messages if m.topic == topic]


@pytest.mark.parametrize("how", [signal.SIGKILL, signal.SIGTERM], ids=["kill-9", "sigterm"])
async def test_queued_commands_survive_the_end_of_the_process(
    how: signal.Signals, broker: MosquittoBroker, simulator: Simulator, tmp_path: Path
) -> None:
    raw = make_settings(broker, simulator, scan_interval=60)
    raw["chargers"][0]["timeout"] = 5.0
    topics = Topics(raw["mqtt"]["base_topic"])
    garage = simulator.charger("012345")
    daemon = Daemon(_write_config(tmp_path, raw))
    await daemon.start()
    amps = [6, 7, 8, 9, 10]
    async with MqttProbe(broker.host, broker.port, [f"{topics.base}/#"]) as probe:
        await probe.wait_text(topics.availability("garage"), "online")
        garage.faults = SLOW_SET
        for amp in amps:
            await probe.publish(
                topics.command("garage", "change_charging_power"),
                json.dumps({"charging_power": amp, "id": amp}),
            )
        await until(lambda: garage.set_requests >= 1, "the first set under way")
        code = await daemon.end(how)
        assert code == (0 if how == signal.SIGTERM else -signal.SIGKILL)
        garage.faults = Faults()
        # After kill -9 the set that was on its way still lands: the cloud had it. Let it
        # land before the restart. Later, during a resumed command's read-back, it would
        # (truthfully) make that one "not confirmed": a race of this test's timing, which
        # a restart quicker than the 0.6 s set hit in CI.
        await until(lambda: len(garage.set_calls) >= 1, "the set on its way landed")

        restarted = Daemon(daemon.config)
        await restarted.start()
        try:
            await until(
                lambda: len(_results(probe, topics.result("garage"))) >= len(amps),
                "a result for every command",
                within=3 * WAIT,
            )
            await asyncio.sleep(1.0)  # a second result would show by now
        finally:
            await restarted.end(signal.SIGTERM)
    results = _results(probe, topics.result("garage"))
    assert sorted(r["id"] for r in results) == amps, results  # exactly one each
    sent = Counter(call["amp"] for call in garage.set_calls)
    assert all(n == 1 for n in sent.values()), sent  # none reached the charger twice
    for result in results:
        if result["ok"]:
            assert sent[result["id"]] == 1
        else:
            # Only a command cut off mid-way may end like this, and it says so.
            assert how == signal.SIGKILL, result
            assert result["error"].startswith("outcome unknown"), result
            assert result["sent"] == [{"amp": result["id"]}]
    if how == signal.SIGTERM:
        # The running command finished before the exit; the rest waited in the journal.
        assert "commands_resumed" in {e["event"] for e in restarted.events()}
    assert garage.amp == 10  # the resumed commands ran in order: the last one stays
    # After kill -9 the bridge cannot know whether the set on its way landed (here it
    # did): the reason its result says "outcome unknown" instead of resending it.


@pytest.fixture
def persistent_broker() -> Iterator[MosquittoBroker]:
    with MosquittoBroker(persistence=True) as running:
        yield running


async def test_results_finished_while_the_broker_is_down_arrive_after_it_is_back(
    own_broker: MosquittoBroker, simulator: Simulator
) -> None:
    settings = parse_settings(make_settings(own_broker, simulator, scan_interval=60))
    topics = Topics(settings.mqtt.base_topic)
    garage = simulator.charger("012345")
    running = RunningBridge(settings)
    await running.start()
    count = 60
    try:
        async with MqttProbe(own_broker.host, own_broker.port, [f"{topics.base}/#"]) as probe:
            await probe.wait_text(topics.availability("garage"), "online")
            garage.faults = Faults(delay=0.05, only="set")
            for n in range(count):
                await probe.publish(
                    topics.command("garage", "set_phase"), json.dumps({"phase": n % 3, "id": n})
                )
            await until(lambda: running.bridge.chargers["garage"].queued > 10, "a queue")
        own_broker.kill()  # results keep coming while nobody can take them
        await until(lambda: running.bridge.chargers["garage"].queued == 0, "the queue done")
        owed = {json.loads(payload)["id"] for payload in running.bridge.desk.results.owed()}
        assert owed  # finished while the broker was down
        own_broker.start()
        # Subscribed before the bridge is back (it retries after 1 s, then 2 s).
        async with MqttProbe(own_broker.host, own_broker.port, [f"{topics.base}/#"]) as probe:
            await until(
                lambda: owed <= {r["id"] for r in _results(probe, topics.result("garage"))},
                "every result owed while the broker was down",
            )
    finally:
        await running.stop()
    journal = Journal(journal_path(settings))
    # The broker acknowledged every result, and every command journaled has one entry:
    # none ran twice, none is owed. (One that found the queue full was refused before
    # the journal, as a command that can never run is.)
    queue_full = running.bridge.chargers["garage"].runner.stats.rejected
    assert journal.count() == {PUBLISHED: count - queue_full}
    journal.close()


# --- what could never run is refused before it is stored ---------------------------


async def test_a_malformed_command_is_refused_unjournaled_and_the_daemon_goes_on(
    broker: MosquittoBroker, simulator: Simulator, tmp_path: Path
) -> None:
    raw = make_settings(broker, simulator, scan_interval=60)
    topics = Topics(raw["mqtt"]["base_topic"])
    garage = simulator.charger("012345")
    calls: list[str] = []
    simulator.observers.append(lambda serial, call: calls.append(call))
    daemon = Daemon(_write_config(tmp_path, raw))
    await daemon.start()
    topic = topics.command("garage", "change_charging_power")
    try:
        async with MqttProbe(broker.host, broker.port, [f"{topics.base}/#"]) as probe:
            await probe.wait_text(topics.availability("garage"), "online")
            calls.clear()
            bad = await probe.command(topic, '{"charging_power": "ten", "id": "bad"}')
            assert calls == []  # no API call at all: not even a look at the charger
            good = await probe.command(topic, '{"charging_power": 10, "id": "good"}')
    finally:
        code = await daemon.end(signal.SIGTERM)
    assert bad == {"service": "change_charging_power", "ok": False, "id": "bad",
                   "error": "charging_power must be an integer"}  # fmt: skip
    assert good["ok"] is True, good  # the daemon went on
    assert garage.amp == 10
    assert code == 0
    (rejected,) = [e for e in daemon.events() if e["event"] == "command_rejected"]
    assert (rejected["level"], rejected["reason"]) == (
        "warning",
        "charging_power must be an integer",
    )
    journal = Journal(journal_path(parse_settings(raw)))
    try:  # the valid command only: the malformed one was never stored
        assert [e.payload for e in journal.entries(PUBLISHED)] == [
            b'{"charging_power": 10, "id": "good"}'
        ]
        assert journal.count() == {PUBLISHED: 1}
    finally:
        journal.close()


# --- the queue: re-checked when a command's turn comes -------------------------------


async def _send(probe: MqttProbe, topic: str, payloads: list[dict[str, Any]]) -> list[Any]:
    """Publish the commands and wait for a result to each; the results in arrival order."""
    result_topic = topic.rsplit("/", 1)[0] + "/result"
    for payload in payloads:
        await probe.publish(topic, json.dumps(payload))
    await until(
        lambda: len(_results(probe, result_topic)) == len(payloads), "results", within=6 * WAIT
    )
    return _results(probe, result_topic)


async def test_a_command_that_waited_too_long_in_the_queue_is_refused_as_stale(
    broker: MosquittoBroker, simulator: Simulator
) -> None:
    garage = simulator.charger("012345")
    async with garage_bridge(broker, simulator, http_timeout=5.0, max_command_age=1) as (
        topics, _, probe,
    ):  # fmt: skip
        garage.faults = Faults(delay=0.8, only="set")
        commands = [{"charging_power": 7 + n, "id": n} for n in range(3)]
        results = await _send(probe, topics.command("garage", "change_charging_power"), commands)
    last = results[-1]
    assert last["id"] == 2
    assert last["ok"] is False
    assert last["error"].startswith("stale: received "), last
    assert all(call["amp"] != 9 for call in garage.set_calls)  # it never ran


async def test_commands_for_a_charger_that_died_are_refused_at_once(
    broker: MosquittoBroker, simulator: Simulator
) -> None:
    garage = simulator.charger("012345")
    async with garage_bridge(broker, simulator) as (topics, _, probe):
        garage.faults = Faults(delay=30)  # accepts, never answers: timeouts
        commands = [{"phase": 1, "id": n} for n in range(6)]
        results = await _send(probe, topics.command("garage", "set_phase"), commands)
    # Only the first command talked to the charger; the others did not wait for it.
    assert garage.set_requests <= 2  # the first set and its one retry
    by_id = {r["id"]: r for r in results}
    assert sorted(by_id) == list(range(6))
    assert by_id[0]["error"] == "timed out"
    # The waiting ones were refused when the charger went offline: before the first
    # command had even finished waiting out its timeouts.
    assert [r["id"] for r in results][-1] == 0
    for n in range(1, 6):
        assert by_id[n]["ok"] is False
        assert by_id[n]["error"].startswith("charger offline"), by_id[n]


async def test_a_full_queue_refuses_with_a_reason(
    broker: MosquittoBroker, simulator: Simulator
) -> None:
    garage = simulator.charger("012345")
    async with garage_bridge(broker, simulator, http_timeout=5.0) as (topics, _, probe):
        garage.faults = Faults(delay=0.3, only="set")
        commands = [{"phase": 1, "id": n} for n in range(30)]
        results = await _send(probe, topics.command("garage", "set_phase"), commands)
    full = [r for r in results if r.get("error", "").startswith("queue full")]
    assert full, results
    assert full[0]["error"] == "queue full: 20 commands wait for garage"
    assert sorted(r["id"] for r in results) == list(range(30))


# --- one bridge per journal ---------------------------------------------------------


async def test_a_second_instance_with_the_same_client_id_refuses_to_start(
    broker: MosquittoBroker, simulator: Simulator, tmp_path: Path
) -> None:
    # Its own HTTP port: the second start used to end on "address already in use",
    # which says nothing of the instance already running.
    raw = make_settings(broker, simulator, scan_interval=60)
    raw["state_dir"] = str(tmp_path / "state")
    raw["http"] = {"listen": f"127.0.0.1:{free_port()}"}
    topics = Topics(raw["mqtt"]["base_topic"])
    first = Daemon(_write_config(tmp_path, raw))
    await first.start()
    try:
        async with MqttProbe(broker.host, broker.port, [f"{topics.base}/#"]) as probe:
            await probe.wait_text(topics.availability("garage"), "online")
        second = await asyncio.create_subprocess_exec(
            sys.executable, "-m", "goe2mqtt", "--config", str(first.config),
            stdout=asyncio.subprocess.DEVNULL, stderr=asyncio.subprocess.PIPE,
            env={**os.environ},
        )  # fmt: skip
        _, stderr = await asyncio.wait_for(second.communicate(), PROCESS_WAIT)
        text = stderr.decode()
        assert second.returncode == 2, text
        assert first.process is not None
        pid, state = first.process.pid, tmp_path / "state"
        expected = f"another goe2mqtt is already running (pid {pid}, state dir {state}"
        assert expected in text, text
        assert "cannot listen" not in text, text
        assert "Traceback" not in text, text
        assert first.running
    finally:
        assert await first.end(signal.SIGTERM) == 0
