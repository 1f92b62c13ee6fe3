"""bench/chaos.py's bridge and what breaks it: the bridge as its own process (killed and
started again), its config, state_dir on a small tmpfs that fills up, and the chaos
loop that kills the bridge, restarts or freezes the broker and sets the chargers'
faults (bench/soak.py's)."""

from __future__ import annotations

import asyncio
import contextlib
import json
import random
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

from soak import FAULTS, rss_kib

from goe2mqtt.sim.broker import MosquittoBroker, free_port
from goe2mqtt.sim.simulator import Faults, SimulatedCharger, Simulator

TOKEN = "chaos-token-77a1"
HOSTILE_WS_SERIAL, OWN_MQTT_SERIAL = "700001", "700002"
BASE = "chaos"
CLIENT_ID = "goe2mqtt-chaos"


class BridgeProcess:
    """The bridge as its own process; killed and started again by the chaos."""

    def __init__(self, config: Path, log: Path) -> None:
        self.config, self.log = config, log
        self.process: subprocess.Popen[bytes] | None = None
        self.kills = 0
        self.own_exits: list[int] = []  # exit codes of ends the chaos did not cause
        self.rss: list[tuple[float, int]] = []  # (seconds since this process started, KiB)
        self.started = 0.0

    def start(self) -> None:
        with open(self.log, "ab") as out:
            self.process = subprocess.Popen(
                [sys.executable, "-m", "goe2mqtt", "--config", str(self.config),
                 "--log-format", "json"],
                stdout=out, stderr=subprocess.STDOUT,
            )  # fmt: skip
        self.started = time.monotonic()

    def kill(self) -> None:
        assert self.process is not None
        self.process.send_signal(signal.SIGKILL)
        self.process.wait()
        self.kills += 1

    def stop(self) -> int:
        assert self.process is not None
        self.process.terminate()
        return self.process.wait(30)

    def check_alive(self) -> None:
        """A bridge that ended by itself is counted, then started again (as systemd would)."""
        if self.process is not None and self.process.poll() is not None:
            self.own_exits.append(self.process.returncode)
            self.start()

    def sample_rss(self) -> None:
        if self.process is not None and self.process.poll() is None:
            with contextlib.suppress(OSError):
                self.rss.append((time.monotonic() - self.started, rss_kib(self.process.pid)))


def write_config(
    workdir: Path, broker: MosquittoBroker, simulator: Simulator, serials: list[str],
    state_dir: Path, hostile_ws: str | None = None,
) -> Path:  # fmt: skip
    config = workdir / "config.yaml"
    peers: list[dict[str, Any]] = []
    if hostile_ws is not None:
        peers = [
            {"name": "hws", "serial": HOSTILE_WS_SERIAL, "host": hostile_ws,
             "password": "hostile-peer-pass", "transport": "websocket", "timeout": 2},
            {"name": "hmq", "serial": OWN_MQTT_SERIAL, "transport": "mqtt"},
        ]  # fmt: skip
    config.write_text(
        json.dumps(  # JSON is YAML
            {
                "mqtt": {"host": broker.host, "port": broker.port, "client_id": CLIENT_ID,
                         "base_topic": BASE, "discovery_prefix": "chaos-ha", "keepalive": 10},
                "state_dir": str(state_dir),
                "http": {"listen": f"127.0.0.1:{free_port()}"},  # never a daemon's 8099
                "chargers": [
                    {"name": f"c{serial}", "serial": serial, "token": TOKEN,
                     "api_url": simulator.url_for(serial), "scan_interval": 5,
                     "idle_scan_interval": 15, "timeout": 2}
                    for serial in serials
                ] + peers,
            }
        )
    )  # fmt: skip
    return config


class SmallDisk:
    """state_dir on a tmpfs of its own, filled to the last byte now and then."""

    def __init__(self, mount: Path, size: str = "8m") -> None:
        self.mount = mount
        mount.mkdir(parents=True, exist_ok=True)
        subprocess.run(["mount", "-t", "tmpfs", "-o", f"size={size}", "tmpfs", str(mount)],
                       check=True)  # fmt: skip
        self.filler = mount / "filler"

    def fill(self) -> None:
        with open(self.filler, "wb", buffering=0) as out, contextlib.suppress(OSError):
            while True:
                out.write(b"\0" * 65536)
        with open(self.filler, "ab", buffering=0) as out, contextlib.suppress(OSError):
            while True:
                out.write(b"\0" * 512)  # the last blocks too

    def free(self) -> None:
        self.filler.unlink(missing_ok=True)

    def unmount(self) -> None:
        subprocess.run(["umount", "-l", str(self.mount)], check=False)


async def chaos(
    bridge: BridgeProcess, broker: MosquittoBroker, chargers: list[SimulatedCharger],
    deadline: float, events: list[str], disk: SmallDisk | None,
) -> None:  # fmt: skip
    loop = asyncio.get_running_loop()
    next_kill = loop.time() + random.uniform(120, 300)
    next_broker = loop.time() + random.uniform(150, 330)
    next_full = loop.time() + random.uniform(60, 180)
    while loop.time() < deadline:
        await asyncio.sleep(random.uniform(5, 15))
        bridge.check_alive()
        bridge.sample_rss()
        now = loop.time()
        if disk is not None and now >= next_full:
            events.append("disk full")
            disk.fill()
            await asyncio.sleep(random.uniform(20, 60))
            disk.free()
            bridge.check_alive()
            next_full = now + random.uniform(180, 360)
        elif now >= next_kill:
            events.append("bridge kill -9")
            bridge.kill()
            await asyncio.sleep(random.uniform(1, 4))
            bridge.start()
            next_kill = now + random.uniform(180, 360)
        elif now >= next_broker:
            if random.random() < 0.5:
                events.append("broker restart")
                await asyncio.to_thread(broker.restart)
            else:
                events.append("broker frozen 20 s")
                broker.pause()
                await asyncio.sleep(20)
                broker.resume()
            next_broker = now + random.uniform(180, 360)
        else:
            charger = random.choice(chargers)
            label, faults, lasts = random.choice(FAULTS)
            events.append(label)
            charger.faults = Faults(
                **{**faults.__dict__, "values": dict(faults.values),
                   "missing": list(faults.missing)}
            )  # fmt: skip
            if lasts:
                loop.call_later(lasts, setattr, charger, "faults", Faults())
            plugged = random.choice(chargers)
            plugged.unplug() if plugged.plugged else plugged.plug_in()
