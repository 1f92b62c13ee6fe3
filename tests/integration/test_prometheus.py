"""A real Prometheus scrapes the daemon running simulated chargers."""

from __future__ import annotations

import json
import re
from pathlib import Path

from goe2mqtt.mqtt.topics import Topics
from goe2mqtt.sim.broker import MosquittoBroker
from goe2mqtt.sim.simulator import Simulator

from ..conftest import SERIALS, MqttProbe, make_settings
from ..prometheus import prometheus, query, wait_for_value
from ..web import get, web_daemon

# What dashboards and alerts rely on (issue 29): each must be in a real scrape.
FAMILIES = (
    "goe2mqtt_build_info", "goe2mqtt_mqtt_connected", "goe2mqtt_mqtt_reconnects_total",
    "goe2mqtt_journal_ok", "goe2mqtt_journal_pending_results",
    "goe2mqtt_event_loop_lag_seconds", "process_resident_memory_bytes",
    "process_cpu_seconds_total", "process_open_fds", "goe2mqtt_charger_online",
    "goe2mqtt_charger_info", "goe2mqtt_charger_last_update_age_seconds",
    "goe2mqtt_charger_polls_total", "goe2mqtt_charger_reconnects_total",
    "goe2mqtt_commands_total", "goe2mqtt_command_duration_seconds",
    "goe2mqtt_charger_power_watts", "goe2mqtt_charger_energy_joules_total",
    "goe2mqtt_charger_current_amperes", "goe2mqtt_charger_temperature_celsius",
    "goe2mqtt_charger_car_state",
)  # fmt: skip

# No MQTT connection was lost in this run: the family has its HELP, and no sample yet.
NO_SAMPLE_YET = {"goe2mqtt_mqtt_reconnects_total"}

DASHBOARD = Path(__file__).resolve().parents[2] / "contrib" / "grafana" / "goe2mqtt.json"
METRIC_NAME = re.compile(r"\b(?:goe2mqtt|process)_[a-z_]+")


def dashboard_queries() -> list[str]:
    board = json.loads(DASHBOARD.read_text())
    panels = [p for p in board["panels"] if p["type"] != "row"]
    queries = [target["expr"] for panel in panels for target in panel["targets"]]
    for variable in board["templating"]["list"]:
        if variable["type"] == "query":
            queries.append(variable["query"]["query"].replace("label_values(", "").split(",")[0])
    return queries


def value(vector: list[dict[str, object]]) -> float:
    (sample,) = vector
    point = sample["value"]
    assert isinstance(point, list)
    return float(point[1])


async def test_prometheus_scrapes_chargers_commands_and_power(
    broker: MosquittoBroker, simulator: Simulator, tmp_path: Path
) -> None:
    raw = make_settings(broker, simulator, chargers=("garage", "carport"))
    topics = Topics(raw["mqtt"]["base_topic"])
    async with (
        web_daemon(tmp_path / "bridge", raw) as (_, url),
        prometheus(tmp_path / "prometheus", url.removeprefix("http://")) as prom,
    ):
        online = await wait_for_value(
            prom, "goe2mqtt_charger_online", lambda v: len(v) == 2 and all(
                s["value"][1] == "1" for s in v)
        )  # fmt: skip
        assert {s["metric"]["charger"] for s in online} == {"garage", "carport"}
        (info,) = await query(prom, 'goe2mqtt_charger_info{charger="garage"}')
        assert info["metric"]["transport"] == "polling"
        assert info["metric"]["model"]
        # A command moves its counter.
        applied = 'goe2mqtt_commands_total{charger="garage",service="set_phase",' \
            'outcome="applied"}'  # fmt: skip
        assert await query(prom, applied) == []
        async with MqttProbe(broker.host, broker.port, [f"{topics.base}/#"]) as probe:
            result = await probe.command(topics.command("garage", "set_phase"), "1")
        assert result["ok"] is True
        assert value(await wait_for_value(prom, applied, lambda v: len(v) == 1)) == 1
        # The simulator's car starts charging: the power shows.
        power = 'goe2mqtt_charger_power_watts{charger="carport"}'
        assert value(await wait_for_value(prom, power, lambda v: len(v) == 1)) == 0
        car = simulator.charger(SERIALS["carport"])
        car.plug_in()
        watts = car.power()
        assert watts > 0
        await wait_for_value(prom, power, lambda v: len(v) == 1 and
                             abs(float(v[0]["value"][1]) - watts) < 1)  # fmt: skip
        state = await query(prom, 'goe2mqtt_charger_car_state{charger="carport"}')
        assert value(state) == 2  # charging
        for family in FAMILIES:
            if family in NO_SAMPLE_YET:
                continue
            assert await query(prom, f"count({family}) or count({family}_bucket)"), family
        # The Grafana dashboard's every query runs on this Prometheus ...
        for expr in dashboard_queries():
            await query(prom, expr.replace("$charger", ".*"))
        _, scrape, _ = await get(url + "/metrics")
    # ... and every metric name it uses is in a real scrape.
    names = {line.split("{")[0].split(" ")[0] for line in scrape.splitlines() if line[:1] != "#"}
    names |= {line.split()[2] for line in scrape.splitlines() if line.startswith("# TYPE ")}
    used = {name for expr in dashboard_queries() for name in METRIC_NAME.findall(expr)}
    assert used - names == set()
    assert len(used) >= 15
    for family in NO_SAMPLE_YET:
        assert f"# TYPE {family} counter" in scrape


async def test_charger_metrics_bounds_the_series_per_charger(
    broker: MosquittoBroker, simulator: Simulator, tmp_path: Path
) -> None:
    seen: dict[str, set[str]] = {}
    for kind in ("all", "health", "none"):
        raw = make_settings(broker, simulator, chargers=("garage", "carport"))
        raw["http"]["charger_metrics"] = kind
        async with web_daemon(tmp_path / kind, raw) as (_, url):
            async with MqttProbe(broker.host, broker.port, [f"{raw['mqtt']['base_topic']}/#"]) \
                    as probe:  # fmt: skip
                topics = Topics(raw["mqtt"]["base_topic"])
                await probe.wait_text(topics.availability("carport"), "online")
                await probe.command(topics.command("garage", "set_phase"), json.dumps(1))
            _, scrape, _ = await get(url + "/metrics")
        seen[kind] = {
            line.split("{")[0] for line in scrape.splitlines()
            if 'charger="' in line and not line.startswith("#")
        }  # fmt: skip
    assert "goe2mqtt_charger_power_watts" in seen["all"]
    assert "goe2mqtt_charger_online" in seen["health"]
    assert "goe2mqtt_charger_power_watts" not in seen["health"]
    assert seen["health"] < seen["all"]
    assert seen["none"] == {"goe2mqtt_commands_total"}  # no charger's name in it


async def test_prometheus_scrapes_with_the_token_from_a_file(
    broker: MosquittoBroker, simulator: Simulator, tmp_path: Path
) -> None:
    secret = "scrape-tok-2c8e51"
    token_file = tmp_path / "http-token"
    token_file.write_text(secret)
    token_file.chmod(0o600)
    raw = make_settings(broker, simulator)
    raw["http"]["token_file"] = str(token_file)
    async with (
        web_daemon(tmp_path / "bridge", raw) as (_, url),
        prometheus(tmp_path / "prometheus", url.removeprefix("http://"), token=secret) as prom,
    ):
        assert (await get(url + "/metrics"))[0] == 401
        online = await wait_for_value(prom, "goe2mqtt_charger_online", lambda v: len(v) == 1)
        assert online[0]["metric"]["charger"] == "garage"
