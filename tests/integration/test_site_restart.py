"""A site across restarts, through the bridge and a real broker: a removed site leaves
nothing retained behind, and what the site's commands set survives a restart until the
config's own value changes."""

from __future__ import annotations

import asyncio
import json
import time
import uuid
from pathlib import Path
from typing import Any

import structlog.testing

from goe2mqtt.bridge.startup import journal_path
from goe2mqtt.commands.journal import Journal
from goe2mqtt.config.settings import parse_settings
from goe2mqtt.sim.broker import MosquittoBroker
from goe2mqtt.sim.simulator import Simulator

from ..conftest import SERIALS, MqttProbe, Received, RunningBridge, cancel, make_settings, until

# A one-charger site's entities: mode, fuse, meter age, fallback, 3 phases, 1 allocation.
ANNOUNCED = 8


def with_site(raw: dict[str, Any], site: str, state_dir: Path, **over: Any) -> dict[str, Any]:
    """The settings with one site over their one charger (its meter stays silent)."""
    charger = raw["chargers"][0]["name"]
    raw["state_dir"] = str(state_dir)
    raw["sites"] = [{
        "name": site, "fuse": 25, "meter_topic": f"{raw['mqtt']['base_topic']}-meter/grid",
        "interval": 1, "chargers": [{"name": charger}], **over,
    }]  # fmt: skip
    return raw


def config_of(message: Received, state_topic: str) -> bool:
    """Whether a discovery config reads this site's state."""
    if not message.payload:
        return False
    try:
        config = json.loads(message.payload)
    except ValueError:
        return False
    return isinstance(config, dict) and config.get("state_topic") == state_topic


async def test_a_removed_sites_configs_and_state_go_at_start_and_another_installations_stay(
    broker: MosquittoBroker, simulator: Simulator, tmp_path: Path
) -> None:
    run = uuid.uuid4().hex[:8]
    prefix = f"ha{run}"
    # inst/a and inst_a: one discovery node id, two installations.
    mine = make_settings(broker, simulator, chargers=("garage",), scan_interval=60)
    mine["mqtt"].update(base_topic=f"inst{run}/a", discovery_prefix=prefix)
    other = make_settings(broker, simulator, chargers=("carport",), scan_interval=60)
    other["mqtt"].update(base_topic=f"inst{run}_a", discovery_prefix=prefix)
    house_state = f"inst{run}/a/site/house/state"
    barn_state = f"inst{run}_a/site/barn/state"
    subscriptions = [f"{prefix}/#", f"inst{run}/#", f"inst{run}_a/#"]
    async with MqttProbe(broker.host, broker.port, subscriptions) as probe:

        def configs(state_topic: str) -> set[str]:
            return {m.topic for m in probe.messages if config_of(m, state_topic)}

        for raw, site, state in ((other, "barn", barn_state), (mine, "house", house_state)):
            running = RunningBridge(parse_settings(with_site(raw, site, tmp_path / site)))
            await running.start()
            try:
                await probe.wait_for(state, lambda m: bool(m.payload))
                await until(lambda s=state: len(configs(s)) >= ANNOUNCED, f"{site}'s configs")
                await until(lambda r=running: r.bridge.mqtt.backlog == 0, "all sent")
            finally:
                await running.stop()
        house, barn = configs(house_state), configs(barn_state)

        mark = probe.mark()

        def cleared() -> set[str]:
            return {m.topic for m in probe.since(mark) if not m.payload}

        mine["sites"] = []  # the house site removed from my config
        restarted = RunningBridge(parse_settings(mine))
        with structlog.testing.capture_logs() as logs:
            await restarted.start()
            try:
                await until(lambda: {house_state, *house} <= cleared(), "house's topics cleared")
                # Past the moment the bridge looks for stale topics, and all it sent arrived.
                await until(lambda: restarted.bridge.mqtt.connected
                            and restarted.bridge.mqtt.backlog == 0, "sent")  # fmt: skip
                await probe.publish(f"{prefix}/fence", b"1")
                await probe.wait_for(f"{prefix}/fence", since=mark)
            finally:
                await restarted.stop()
        assert cleared() & {barn_state, *barn} == set()  # another installation's stay
        assert [e["site"] for e in logs if e["event"] == "site_removed"] == ["house"]
        [removal] = [e for e in logs if e["event"] == "discovery_removed"]  # one line for all
        assert removal["configs"] == len(house)
        assert removal["first"] in house
    async with MqttProbe(broker.host, broker.port, subscriptions) as fresh:  # all retained in
        retained = {m.topic for m in fresh.messages if m.payload}
    assert {barn_state, *barn} <= retained
    assert {house_state, *house} & retained == set()


async def test_a_mode_set_by_command_survives_a_restart_until_the_config_changes(
    broker: MosquittoBroker, simulator: Simulator, tmp_path: Path
) -> None:
    raw = with_site(make_settings(broker, simulator, chargers=("garage",), scan_interval=60),
                    "house", tmp_path / "state")  # fmt: skip
    base = raw["mqtt"]["base_topic"]
    state = f"{base}/site/house/state"
    async with MqttProbe(broker.host, broker.port, [f"{base}/#"]) as probe:

        async def first_state_of_a_run(settings: dict[str, Any]) -> dict[str, Any]:
            """Start the bridge, take the first state it publishes, stop it."""
            mark = probe.mark()
            running = RunningBridge(parse_settings(settings))
            await running.start()
            try:
                first = await probe.wait_for(state, lambda m: bool(m.payload), since=mark)
            finally:
                await running.stop()
            return dict(first.json())

        running = RunningBridge(parse_settings(raw))
        await running.start()
        try:
            await probe.wait_for(state, lambda m: bool(m.payload))
            for service, payload in (("set_mode", {"mode": "pv"}), ("set_fuse", {"fuse": 20})):
                result = await probe.command(f"{base}/site/house/cmd/{service}",
                                             json.dumps(payload))  # fmt: skip
                assert result["ok"] is True, result
        finally:
            await running.stop()

        after_restart = await first_state_of_a_run(raw)
        assert (after_restart["mode"], after_restart["fuse"]) == ("pv", 20)
        raw["sites"][0]["mode"] = "off"  # the user edits the config's mode: it wins
        edited = await first_state_of_a_run(raw)
        assert (edited["mode"], edited["fuse"]) == ("off", 20)  # the fuse was not edited
        raw["sites"][0]["mode"] = "fuse"  # back: pv was dropped with the edit
        assert (await first_state_of_a_run(raw))["mode"] == "fuse"


async def test_a_hand_edited_sites_file_with_a_400_digit_fuse_starts_on_the_configs_fuse(
    broker: MosquittoBroker, simulator: Simulator, tmp_path: Path
) -> None:
    """Found in review: a 400-digit fuse in sites.json (and a 400-digit range bound in
    chargers.json) crashed start-up. The bridge starts on the config's fuse and says which
    file and key it dropped."""
    raw = with_site(make_settings(broker, simulator, chargers=("garage",), scan_interval=60),
                    "house", tmp_path / "state")  # fmt: skip
    base, client_id = raw["mqtt"]["base_topic"], raw["mqtt"]["client_id"]
    state_dir = tmp_path / "state"
    state_dir.mkdir()
    huge = "1" + "0" * 400
    sites = state_dir / f"{client_id}.sites.json"
    sites.write_text(f'{{"sites": {{"house": {{"fuse": {{"value": {huge}, "config": 25}}}}}}}}')
    facts = ('{"model": "go-eCharger", "sw_version": "60.4", "keys": ["amp"], "choices": [],'
             f' "ranges": [["amp", 6, {huge}]]}}')  # fmt: skip
    (state_dir / f"{client_id}.chargers.json").write_text(
        f'{{"chargers": {{"garage": {{"facts": {facts}}}}}}}'
    )
    state = f"{base}/site/house/state"
    async with MqttProbe(broker.host, broker.port, [f"{base}/#"]) as probe:
        with structlog.testing.capture_logs() as logs:
            running = RunningBridge(parse_settings(raw))
            await running.start()
            try:
                first = await probe.wait_for(state, lambda m: bool(m.payload))
            finally:
                await running.stop()
    assert first.json()["fuse"] == 25
    dropped = [e for e in logs if e["event"] == "site_setting_dropped"]
    assert [(e["file"], e["key"]) for e in dropped] == [(str(sites), "sites.house.fuse")]
    assert [e["key"] for e in logs if e["event"] == "remembered_unreadable"] == [
        "chargers.garage.facts"
    ]
    assert json.loads(sites.read_text())["sites"] == {}  # the entry is gone from the file


async def test_a_sites_resume_journaled_before_a_stop_is_not_lost_with_it(
    broker: MosquittoBroker, simulator: Simulator, tmp_path: Path
) -> None:
    """Found in review: the site had paused the carport (frc 1, run), then decided to
    resume it: the resume was journaled and sites.json forgot the pause (it is written
    after the journal), and the bridge stopped (SIGTERM, kill -9) before the resume ran.
    The next start refused the resume as a stale write ("the site decides again"), but
    the site no longer knew of its pause: the carport stayed stopped for good. Now the
    site takes it as its paused charger again and resumes it when there is room."""
    raw = make_settings(broker, simulator, chargers=("garage", "carport"), scan_interval=0.3)
    base = raw["mqtt"]["base_topic"]
    meter = f"{base}-meter/grid"
    raw["state_dir"] = str(tmp_path / "state")
    raw["sites"] = [{
        "name": "house", "fuse": 25, "meter_topic": meter, "interval": 1, "meter_timeout": 3,
        "resume_after": 1, "chargers": [{"name": "garage"}, {"name": "carport"}],
    }]  # fmt: skip
    settings = parse_settings(raw)
    carport = simulator.charger(SERIALS["carport"])
    carport.plug_in()
    carport.frc = 1  # the site's pause, run by the last process
    journal = Journal(journal_path(settings))  # what the last process left: its resume
    journal.record("carport", "set", b'{"frc": 0, "id": "site:house:7"}', retained=False,
                   received=time.time(), site=True)  # fmt: skip
    journal.close()

    async def publish_meter(probe: MqttProbe) -> None:
        while True:  # 2 A of house, and what the chargers draw: room for the carport
            drawn = [sum(simulator.charger(SERIALS[n]).currents()[p] for n in ("garage",
                     "carport")) for p in range(3)]  # fmt: skip
            reading = {f"l{p + 1}": round(2.0 + drawn[p], 2) for p in range(3)}
            await probe.publish(meter, json.dumps(reading))
            await asyncio.sleep(0.2)

    async with MqttProbe(broker.host, broker.port, [f"{base}/#"]) as probe:
        running = RunningBridge(settings)
        await running.start()
        meter_task = asyncio.create_task(publish_meter(probe))
        try:
            result = f"{base}/carport/cmd/result"
            refused = await probe.wait_for(result, lambda m: m.json().get("id") == "site:house:7")
            assert refused.json()["ok"] is False  # decided on the last run's reading
            await until(lambda: carport.frc == 0, "the site resumed the carport", within=20)
        finally:
            await cancel(meter_task)
            await running.stop()


async def test_a_sites_lowering_journaled_before_a_kill_runs_at_the_restart(
    broker: MosquittoBroker, simulator: Simulator, tmp_path: Path
) -> None:
    """Found by the adversary: the site lowered the garage (tcl 8: an oven on the fuse),
    the write was journaled, and the bridge was killed (-9) before it ran. The next start
    refused it as a stale write ("the site decides again"): the garage drew its 16 A on
    until the site's first decision on a fresh reading - with the meter silent, until its
    timeout. A lowering only lowers the draw: it runs at the restart, before any reading,
    as the site's pause does (a raise still does not)."""
    raw = make_settings(broker, simulator, chargers=("garage",), scan_interval=0.3)
    base = raw["mqtt"]["base_topic"]
    raw["state_dir"] = str(tmp_path / "state")
    raw["sites"] = [{  # the meter stays silent: no decision of this run lowers it
        "name": "house", "fuse": 25, "meter_topic": f"{base}-meter/grid", "interval": 1,
        "meter_timeout": 600, "chargers": [{"name": "garage"}],
    }]  # fmt: skip
    settings = parse_settings(raw)
    garage = simulator.charger(SERIALS["garage"])
    garage.plug_in()
    assert garage.effective_current == 16
    journal = Journal(journal_path(settings))  # what the killed process left
    journal.record("garage", "set", b'{"tcl": 8, "id": "site:house:4"}', retained=False,
                   received=time.time(), site=True, lowers=True)  # fmt: skip
    # A raise after it: decided on the killed process's reading, it does not run.
    journal.record("garage", "set", b'{"tcl": 12, "id": "site:house:5"}', retained=False,
                   received=time.time(), site=True)  # fmt: skip
    journal.close()
    async with MqttProbe(broker.host, broker.port, [f"{base}/#"]) as probe:
        running = RunningBridge(settings)
        await running.start()
        try:
            result = f"{base}/garage/cmd/result"
            lowered = await probe.wait_for(result, lambda m: m.json().get("id") == "site:house:4")
            assert lowered.json()["ok"] is True, lowered.json()
            raised = await probe.wait_for(result, lambda m: m.json().get("id") == "site:house:5")
            assert raised.json()["ok"] is False  # decided on the last run's reading
            await until(lambda: garage.effective_current == 8, "the garage lowered")
        finally:
            await running.stop()
    assert garage.effective_current == 8
