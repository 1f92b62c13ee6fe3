"""The container image, built and run for real.

Built by scripts/build-image.sh (a Debian bookworm base from Debian's packages, then
the Dockerfile with buildah). This sandbox refuses `podman run`, so the image's root
filesystem runs under chroot as the image's user, with the image's own environment,
entrypoint and HEALTHCHECK: configured by environment variables only, against the
test Mosquitto and the simulator.
"""

from __future__ import annotations

import asyncio
import json
import os
import shutil
import signal
import subprocess
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from goe2mqtt.mqtt.topics import Topics
from goe2mqtt.sim.broker import MosquittoBroker
from goe2mqtt.sim.simulator import Simulator

from ..conftest import PROCESS_WAIT, SERIALS, TOKEN, WAIT, MqttProbe
from ..web import free_port

ROOT = Path(__file__).resolve().parents[2]
TAG = "localhost/goe2mqtt:test"
TOOLS = ("buildah", "mmdebstrap", "chroot")

pytestmark = pytest.mark.skipif(
    os.geteuid() != 0 or any(shutil.which(t) is None for t in TOOLS),
    reason="needs root, buildah and mmdebstrap (.ci/setup installs them)",
)


def _buildah(*args: str) -> str:
    env = {**os.environ, "STORAGE_DRIVER": os.environ.get("STORAGE_DRIVER", "vfs")}
    result = subprocess.run(["buildah", *args], capture_output=True, text=True, check=True, env=env)
    return result.stdout.strip()


@pytest.fixture(scope="module")
def image() -> Iterator[tuple[Path, dict[str, Any]]]:
    """The built image's root filesystem (mounted) and its config."""
    subprocess.run([str(ROOT / "scripts" / "build-image.sh"), TAG], check=True,
                   capture_output=True, timeout=900)  # fmt: skip
    config = json.loads(_buildah("inspect", "--type", "image", TAG))["Docker"]["config"]
    container = _buildah("from", "--quiet", TAG)
    try:
        yield Path(_buildah("mount", container)), config
    finally:
        _buildah("umount", container)
        _buildah("rm", container)


def _user(rootfs: Path, name: str) -> tuple[int, int]:
    for line in (rootfs / "etc" / "passwd").read_text().splitlines():
        fields = line.split(":")
        if fields[0] == name:
            return int(fields[2]), int(fields[3])
    raise AssertionError(f"no user {name} in the image")


async def test_the_image_runs_as_its_user_with_env_only_config_and_stops_on_sigterm(
    image: tuple[Path, dict[str, Any]], broker: MosquittoBroker, simulator: Simulator
) -> None:
    rootfs, config = image
    assert config["User"] == "goe2mqtt"
    uid, gid = _user(rootfs, config["User"])
    assert uid != 0
    base = "goeimage"
    env = [
        *config["Env"],
        f"GOE2MQTT_MQTT__HOST={broker.host}",
        f"GOE2MQTT_MQTT__PORT={broker.port}",
        f"GOE2MQTT_MQTT__BASE_TOPIC={base}",
        "GOE2MQTT_MQTT__CLIENT_ID=goe2mqtt-image-test",
        "GOE2MQTT_CHARGERS__0__NAME=garage",
        f"GOE2MQTT_CHARGERS__0__SERIAL={SERIALS['garage']}",
        f"GOE2MQTT_CHARGERS__0__TOKEN={TOKEN}",
        f"GOE2MQTT_CHARGERS__0__API_URL={simulator.url_for(SERIALS['garage'])}",
        # The image listens on 0.0.0.0:8099; this run shares the host's network with
        # other tests: a free loopback port instead (the HEALTHCHECK reads the same).
        f"GOE2MQTT_HTTP__LISTEN=127.0.0.1:{free_port()}",
    ]

    def in_image(*argv: str) -> list[str]:
        return ["chroot", f"--userspec={uid}:{gid}", str(rootfs), "env", "-i", *env, *argv]

    topics = Topics(base)
    command = in_image(*config["Entrypoint"], *config["Cmd"])
    async with MqttProbe(broker.host, broker.port, [f"{base}/#"]) as probe:
        process = await asyncio.create_subprocess_exec(
            *command, stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE
        )
        try:
            try:  # a cold start from a fresh image on a busy machine: a longer bound
                await probe.wait_for(
                    topics.availability("garage"), lambda m: m.text == "online", within=3 * WAIT
                )
            except AssertionError:
                process.kill()
                _, stderr = await process.communicate()
                raise AssertionError(stderr.decode()[-3000:]) from None
            status = await asyncio.to_thread(Path(f"/proc/{process.pid}/status").read_text)
            assert f"Uid:\t{uid}\t" in status  # not root
            result = await probe.command(topics.command("garage", "set_phase"), "1")
            assert result["ok"] is True
            # The image's own HEALTHCHECK command, as a container engine would run it.
            test = config["Healthcheck"]["Test"]
            assert test[0] == "CMD"
            for _ in range(int(WAIT / 0.5)):
                check = await asyncio.create_subprocess_exec(
                    *in_image(*test[1:]), stdout=asyncio.subprocess.PIPE
                )
                out, _ = await check.communicate()
                if check.returncode == 0:
                    break
                await asyncio.sleep(0.5)
            assert check.returncode == 0, out
            assert out.decode() == 'healthy: {"status": "ok", "reasons": []}\n'
            assert "8099/tcp" in config["ExposedPorts"]
            assert "GOE2MQTT_HTTP__LISTEN=0.0.0.0:8099" in config["Env"]
            mark = probe.mark()
            process.send_signal(signal.SIGTERM)
            _, stderr = await asyncio.wait_for(process.communicate(), PROCESS_WAIT)
            assert process.returncode == 0, stderr.decode()[-2000:]
            await probe.wait_text(topics.bridge_availability, "offline", since=mark)
        finally:
            if process.returncode is None:
                process.kill()
                await process.wait()
    journal = rootfs / "data" / "goe2mqtt-image-test.journal"
    assert journal.exists()  # in the /data volume, where it survives the container
    assert journal.stat().st_uid == uid
    events = [json.loads(line)["event"] for line in stderr.decode().splitlines()]
    assert {"bridge_started", "mqtt_connected", "command_done", "bridge_stopped"} <= set(events)
