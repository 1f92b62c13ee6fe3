"""deploy/kubernetes: valid manifests, and pods that split one fleet by their names.

The manifests are checked against Kubernetes' own schemas (kubernetes-validate bundles
them: no cluster, no network). The shard test runs three goe2mqtt processes with the
ConfigMap's config, each told only its pod name (HOSTNAME=goe2mqtt-N), against one
Mosquitto and one simulated fleet.
"""

from __future__ import annotations

import asyncio
import json
import os
import sys
from pathlib import Path
from typing import Any

import kubernetes_validate
import pytest
import yaml

from goe2mqtt.config.loading import load_settings
from goe2mqtt.config.settings import parse_settings
from goe2mqtt.mqtt.topics import Topics
from goe2mqtt.sim.broker import MosquittoBroker
from goe2mqtt.sim.simulator import SimulatedCharger, Simulator

from ..conftest import PROCESS_WAIT, TOKEN, MqttProbe
from ..web import free_port, get

MANIFESTS = Path(__file__).resolve().parents[2] / "deploy" / "kubernetes"
KUBERNETES_VERSION = "1.30.0"
FLEET = [f"{n:06d}" for n in range(200100, 200112)]


def documents(name: str) -> list[dict[str, Any]]:
    return [doc for doc in yaml.safe_load_all((MANIFESTS / name).read_text()) if doc]


def pod_config() -> dict[str, Any]:
    config: dict[str, Any] = yaml.safe_load(documents("configmap.yaml")[0]["data"]["config.yaml"])
    return config


@pytest.mark.parametrize(
    "name", ["configmap.yaml", "secret.example.yaml", "service.yaml", "statefulset.yaml"]
)
def test_manifests_are_valid_kubernetes(name: str) -> None:
    for document in documents(name):
        kubernetes_validate.validate(document, KUBERNETES_VERSION, strict=True)


def test_kustomization_lists_every_manifest_but_the_secret() -> None:
    (kustomization,) = documents("kustomization.yaml")
    assert sorted(kustomization["resources"]) == [
        "configmap.yaml", "service.yaml", "statefulset.yaml"
    ]  # fmt: skip


def test_every_pod_reads_the_one_config_as_its_own_shard(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    (statefulset,) = documents("statefulset.yaml")
    config = pod_config()
    assert statefulset["spec"]["replicas"] == config["shard"]["count"]
    (secret,) = documents("secret.example.yaml")
    for name, value in secret["stringData"].items():
        monkeypatch.setenv(name, value)
    seen = set()
    for ordinal in range(config["shard"]["count"]):
        monkeypatch.setenv("HOSTNAME", f"goe2mqtt-{ordinal}")
        settings = parse_settings(config)
        assert settings.shard is not None
        assert settings.shard.index == ordinal
        assert settings.mqtt.client_id == f"goe2mqtt-{ordinal}"
        seen.update(c.name for c in settings.owned_chargers())
    assert seen == {c["name"] for c in config["chargers"]}
    container = statefulset["spec"]["template"]["spec"]["containers"][0]
    (port,) = container["ports"]
    assert config["http"]["listen"] == f"0.0.0.0:{port['containerPort']}"
    for kind, path in (("livenessProbe", "/healthz"), ("readinessProbe", "/readyz")):
        assert container[kind]["httpGet"] == {"path": path, "port": port["name"]}
    (service,) = documents("service.yaml")
    assert service["spec"]["ports"][0]["targetPort"] == port["name"]
    mounts = {m["mountPath"] for m in container["volumeMounts"]}
    assert config["state_dir"] in mounts  # the journal outlives the pod


def image_environment() -> dict[str, str]:
    """The GOE2MQTT_* variables the image's Dockerfile sets: they win over the config."""
    dockerfile = (MANIFESTS.parents[1] / "Dockerfile").read_text()
    block = dockerfile.split("\nENV ", 1)[1].split("\n\n", 1)[0].split("\nVOLUME", 1)[0]
    pairs = [part.strip() for part in block.replace("\\\n", " ").split()]
    return dict(pair.split("=", 1) for pair in pairs if pair.startswith("GOE2MQTT_"))


def test_what_a_pod_writes_lies_on_a_writable_volume(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The root filesystem is read-only: the journal and the health file must lie on a
    volume. The image's GOE2MQTT_HEALTH_FILE (/tmp) won over the config's health_file,
    and the health file failed to be written every 30 s (health_file_failed)."""
    (statefulset,) = documents("statefulset.yaml")
    (container,) = statefulset["spec"]["template"]["spec"]["containers"]
    assert container["securityContext"]["readOnlyRootFilesystem"] is True
    writable = [m["mountPath"] for m in container["volumeMounts"] if not m.get("readOnly")]
    environ = {**image_environment(), "HOSTNAME": "goe2mqtt-0"}
    assert "GOE2MQTT_HEALTH_FILE" in environ  # the image sets one
    environ.update({e["name"]: e["value"] for e in container.get("env", [])})
    (secret,) = documents("secret.example.yaml")
    for name, value in {**secret["stringData"], "HOSTNAME": "goe2mqtt-0"}.items():
        monkeypatch.setenv(name, value)  # ${GOE_TOKEN_...} and the pod's name
    config = tmp_path / "config.yaml"
    config.write_text(documents("configmap.yaml")[0]["data"]["config.yaml"])
    settings = load_settings(config, environ)
    for path in (settings.state_dir, settings.health_file):
        assert path is not None
        assert any(Path(path).is_relative_to(mount) for mount in writable), (path, writable)


async def test_three_pods_poll_each_charger_once_and_answer_each_command_once(
    broker: MosquittoBroker, tmp_path: Path
) -> None:
    simulator = Simulator(SimulatedCharger(serial, TOKEN) for serial in FLEET)
    await simulator.start()
    base = "goek8s"
    config = pod_config()
    config["mqtt"].update(host=broker.host, port=broker.port, base_topic=base)
    config["chargers"] = [
        {"name": f"c{serial}", "serial": serial, "token": "${GOE_TOKEN}",
         "api_url": simulator.url_for(serial), "scan_interval": 0.5}
        for serial in FLEET
    ]  # fmt: skip
    pods = []
    ports = [free_port() for _ in range(config["shard"]["count"])]
    for ordinal in range(config["shard"]["count"]):
        pod_dir = tmp_path / f"goe2mqtt-{ordinal}"  # each pod's own volume
        pod_dir.mkdir()
        pod_config_file = pod_dir / "config.yaml"
        own = {**config, "state_dir": str(pod_dir), "health_file": str(pod_dir / "health.json"),
               # each pod has its own address in a cluster; here, a port of its own
               "http": {**config["http"], "listen": f"127.0.0.1:{ports[ordinal]}"}}  # fmt: skip
        pod_config_file.write_text(yaml.safe_dump(own))
        env = {**os.environ, "HOSTNAME": f"goe2mqtt-{ordinal}", "GOE_TOKEN": TOKEN}
        pod = await asyncio.create_subprocess_exec(
            sys.executable, "-m", "goe2mqtt", "--config", str(pod_config_file),
            env=env, stdout=asyncio.subprocess.DEVNULL, stderr=asyncio.subprocess.DEVNULL,
        )  # fmt: skip
        pods.append(pod)
    topics = Topics(base)
    try:
        async with MqttProbe(broker.host, broker.port, [f"{base}/#"]) as probe:
            for serial in FLEET:  # three processes starting at once on shared cores
                await probe.wait_text(
                    topics.availability(f"c{serial}"), "online", within=PROCESS_WAIT
                )
            owned = []
            for ordinal in range(len(pods)):
                info = await probe.wait_for(
                    Topics(base, shard=ordinal).bridge_info,
                    lambda m: len(json.loads(m.payload)["chargers"]) > 0,
                )
                owned.append(set(info.json()["chargers"]))
            assert sum(len(shard) for shard in owned) == len(FLEET)  # disjoint ...
            assert set().union(*owned) == {f"c{serial}" for serial in FLEET}  # ... and whole
            assert all(simulator.charger(serial).status_calls > 0 for serial in FLEET)
            # What the kubelet and Prometheus ask each pod: its probes and its chargers.
            for ordinal, port in enumerate(ports):
                pod_url = f"http://127.0.0.1:{port}"
                for path in ("/healthz", "/readyz"):
                    assert (await get(pod_url + path))[0] == 200
                _, metrics, _ = await get(pod_url + "/metrics")
                online = {
                    line.split('"')[1]
                    for line in metrics.splitlines()
                    if line.startswith("goe2mqtt_charger_online{")
                }
                assert online == owned[ordinal]
                assert "goe2mqtt_charger_power_watts" not in metrics  # charger_metrics: health

            mark = probe.mark()
            for serial in FLEET:
                await probe.publish(
                    topics.command(f"c{serial}", "stop_charging"), json.dumps({"id": serial})
                )
            for serial in FLEET:
                await probe.wait_for(topics.result(f"c{serial}"), since=mark)
            await asyncio.sleep(2.0)  # a second answer would arrive by now
            for serial in FLEET:
                results = probe.since(mark, topics.result(f"c{serial}"))
                assert [r.json()["id"] for r in results] == [serial]
                assert results[0].json()["ok"] is True
    finally:
        for pod in pods:
            if pod.returncode is None:
                pod.terminate()
        for pod in pods:
            assert await asyncio.wait_for(pod.wait(), 30) == 0
        await simulator.stop()


@pytest.mark.parametrize(
    ("hostname", "client_id", "problem"),
    [
        ("laptop", "goe2mqtt-{shard}", "shard.index: not given, and the host name 'laptop'"),
        ("goe2mqtt-5", "goe2mqtt-{shard}", "shard.index: 5 must be below count (3)"),
        ("goe2mqtt-1", "goe2mqtt", "mqtt.client_id: with shard.index taken from the host"),
    ],
)
def test_a_pod_that_cannot_know_its_shard_stops_with_the_key(
    monkeypatch: pytest.MonkeyPatch, hostname: str, client_id: str, problem: str
) -> None:
    from goe2mqtt.config.problems import ConfigError

    monkeypatch.setenv("HOSTNAME", hostname)
    config = pod_config()
    config["mqtt"]["client_id"] = client_id
    config["chargers"] = [{"name": "garage", "serial": "012345", "token": "t-1"}]
    with pytest.raises(ConfigError) as caught:
        parse_settings(config)
    assert problem in str(caught.value)
