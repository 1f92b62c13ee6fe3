"""A real Home Assistant for tests: installed once into a cached venv, run on loopback.

Home Assistant 2024.3.3 is the last release that runs on Python 3.11. Everything the
integrations we load need is pinned here and installed with it, and HA runs with
--skip-pip, so it installs nothing at start.
"""

from __future__ import annotations

import asyncio
import contextlib
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import aiohttp

from goe2mqtt.sim.broker import free_port

from .conftest import stop_process
from .tool_cache import CACHE, installed_once

HA_VERSION = "2024.3.3"
# Requirements of the integrations HA 2024.3.3 sets up here: its default ones (frontend,
# backup, hardware, network, person, ...), what we configure (http, api, config,
# onboarding, mqtt) and their dependencies, read from their manifests.
HA_REQUIREMENTS = (
    f"homeassistant=={HA_VERSION}",
    "home-assistant-frontend==20240307.0",
    "paho-mqtt==1.6.1",
    "janus==1.0.0",
    "Pillow==10.2.0",
    "psutil-home-assistant==0.0.1",
    "securetar==2024.2.1",
    "SQLAlchemy==2.0.27",
    "fnv-hash-fast==0.5.0",
    "ifaddr==0.2.0",
    "numpy==1.26.0",  # mqtt sets up all its platforms; camera imports stream, which needs it
    # hass-nabucasa's acme needs josepy 1.x (2.0 dropped ComparableX509); HA's http
    # imports it on the first request. HA's own constraints file pinned it too.
    "josepy==1.14.0",
)
USER, PASSWORD = "goe2mqtt-test", "not-a-real-password-1"


def ensure_installed() -> Path:
    """The hass executable, installing it into the cache the first time (minutes)."""

    def install(venv: Path) -> None:
        subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True)
        subprocess.run(
            [str(venv / "bin" / "pip"), "install", "-q", "--disable-pip-version-check",
             *HA_REQUIREMENTS],
            check=True,
            timeout=1800,
        )  # fmt: skip

    venv = installed_once(CACHE / f"ha-{HA_VERSION}", install, " ".join(HA_REQUIREMENTS))
    return venv / "bin" / "hass"


CONFIGURATION = """\
homeassistant:
  name: goe2mqtt test
  latitude: 48.2
  longitude: 16.4
  elevation: 170
  unit_system: metric
  time_zone: Europe/Vienna
  currency: EUR
  country: AT
http:
  server_host: 127.0.0.1
  server_port: {port}
api:
config:
onboarding:
logger:
  default: warning
"""


class HomeAssistant:
    def __init__(self, config_dir: Path) -> None:
        self.config_dir = config_dir
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.log_path = config_dir / "home-assistant.log"
        self._process: subprocess.Popen[bytes] | None = None
        self._token = ""
        self._http: aiohttp.ClientSession | None = None

    async def start(self, hass: Path, within: float = 180, extra_config: str = "") -> None:
        self.config_dir.mkdir(parents=True, exist_ok=True)
        (self.config_dir / "configuration.yaml").write_text(
            CONFIGURATION.format(port=self.port) + extra_config
        )
        self._process = subprocess.Popen(  # noqa: ASYNC220 - started once, never waited on here
            [str(hass), "-c", str(self.config_dir), "--skip-pip", "--log-file",
             str(self.log_path)],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )  # fmt: skip
        self._http = aiohttp.ClientSession()
        deadline = time.monotonic() + within
        while time.monotonic() < deadline:
            if self._process.poll() is not None:
                raise RuntimeError(f"Home Assistant exited: {self.log_tail()}")
            if "Activating recovery mode" in self.log_text():
                raise RuntimeError(f"Home Assistant is in recovery mode: {self.log_errors()}")
            with contextlib.suppress(aiohttp.ClientError):
                async with self._http.get(f"{self.url}/api/onboarding") as response:
                    if response.status == 200:
                        break
            await asyncio.sleep(0.5)
        else:
            raise RuntimeError(f"Home Assistant did not start: {self.log_tail()}")
        await self._onboard()

    async def _onboard(self) -> None:
        """Create the owner as a new installation's first screen does; keep a token."""
        assert self._http is not None
        client_id = f"{self.url}/"
        async with self._http.post(
            f"{self.url}/api/onboarding/users",
            json={"client_id": client_id, "name": "Test", "username": USER,
                  "password": PASSWORD, "language": "en"},
        ) as response:  # fmt: skip
            response.raise_for_status()
            code = (await response.json())["auth_code"]
        async with self._http.post(
            f"{self.url}/auth/token",
            data={"grant_type": "authorization_code", "code": code, "client_id": client_id},
        ) as response:
            response.raise_for_status()
            self._token = (await response.json())["access_token"]

    async def add_mqtt(self, host: str, port: int) -> None:
        """Set up the MQTT integration through its config flow, as the UI does."""
        flow = await self.post("config/config_entries/flow", {"handler": "mqtt"})
        while flow["type"] == "form":
            flow = await self.post(
                f"config/config_entries/flow/{flow['flow_id']}", {"broker": host, "port": port}
            )
        if flow["type"] != "create_entry":
            raise RuntimeError(f"MQTT config flow ended with {flow}")

    async def request(self, method: str, path: str, body: Any = None) -> Any:
        assert self._http is not None
        async with self._http.request(
            method,
            f"{self.url}/api/{path}",
            json=body,
            headers={"Authorization": f"Bearer {self._token}"},
        ) as response:
            text = await response.text()
            if response.status >= 400:
                raise RuntimeError(f"{method} {path}: {response.status} {text[:300]}")
            return await response.json() if "json" in response.content_type else text

    async def post(self, path: str, body: Any) -> Any:
        return await self.request("POST", path, body)

    async def states(self) -> dict[str, dict[str, Any]]:
        return {s["entity_id"]: s for s in await self.request("GET", "states")}

    async def template(self, text: str) -> str:
        return str(await self.post("template", {"template": text}))

    async def call(self, domain: str, service: str, **data: Any) -> None:
        await self.post(f"services/{domain}/{service}", data)

    def log_text(self) -> str:
        try:
            return self.log_path.read_text(errors="replace")
        except OSError:
            return ""

    def log_tail(self) -> str:
        return self.log_text()[-2000:]

    def log_errors(self) -> str:
        return "\n".join(line for line in self.log_text().splitlines() if " ERROR " in line)[:3000]

    async def stop(self) -> None:
        if self._http is not None:
            await self._http.close()
        if self._process is not None:
            await stop_process(self._process, 60)
