"""Shared fixtures: a real Mosquitto, the simulated go-e cloud, an MQTT probe, the bridge."""

from __future__ import annotations

import asyncio
import contextlib
import io
import json
import os
import signal
import ssl
import subprocess
import sys
import tempfile
import uuid
from collections.abc import AsyncIterator, Callable, Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import aiohttp
import aiomqtt
import pytest
import yaml

from goe2mqtt.bridge.process import Bridge
from goe2mqtt.charger.loop import Charger
from goe2mqtt.config.http import HttpSettings
from goe2mqtt.config.schema import given, replace
from goe2mqtt.config.settings import Settings, parse_settings
from goe2mqtt.goe.client import GoeClient
from goe2mqtt.mqtt.topics import Topics
from goe2mqtt.sim.broker import MosquittoBroker
from goe2mqtt.sim.simulator import SimulatedCharger, Simulator

from .publisher import RecordingPublisher

# Every bridge a test starts (in this process or as a child) journals under here,
# one file per client_id, never in the user's own state directory.
os.environ["XDG_STATE_HOME"] = tempfile.mkdtemp(prefix="goe2mqtt-tests-")
os.environ.pop("STATE_DIRECTORY", None)

TOKEN = "tok-3f9c2a7e5d1b"
SERIALS = {"garage": "012345", "carport": "067890"}
PASSWORD = "wallbox-pw-7"  # the chargers' own, for their websocket (push_sim)
WAIT = 10.0  # an upper bound for liveness, never a speed assertion
# The same for what waits on a new interpreter's start-up (imports, a first line): on a
# starved machine (both cores busy) that alone passed 10 s.
PROCESS_WAIT = 60.0


@pytest.fixture(scope="session")
def broker() -> Iterator[MosquittoBroker]:
    with MosquittoBroker() as running:
        yield running


@pytest.fixture
def own_broker() -> Iterator[MosquittoBroker]:
    """A broker of the test's own, for tests that kill or restart it."""
    with MosquittoBroker() as running:
        yield running


@pytest.fixture
async def simulator() -> AsyncIterator[Simulator]:
    sim = Simulator(SimulatedCharger(serial, TOKEN) for serial in SERIALS.values())
    await sim.start()
    for serial in SERIALS.values():
        await sim.serve_local(serial)
    yield sim
    await sim.stop()


@pytest.fixture
async def push_sim() -> AsyncIterator[Simulator]:
    """The chargers with a websocket too: the garage hashes the password with pbkdf2, the
    carport with bcrypt; a delta every 0.1 s."""
    sim = Simulator(
        [
            SimulatedCharger(SERIALS["garage"], TOKEN, password=PASSWORD, hash_kind="pbkdf2"),
            SimulatedCharger(SERIALS["carport"], TOKEN, password=PASSWORD, hash_kind="bcrypt"),
        ],
        delta_interval=0.1,
    )
    await sim.start()
    for serial in SERIALS.values():
        await sim.serve_local(serial)
    yield sim
    await sim.stop()


@dataclass(frozen=True)
class Received:
    topic: str
    payload: bytes
    retain: bool

    @property
    def text(self) -> str:
        return self.payload.decode()

    def json(self) -> Any:
        return json.loads(self.payload)


# Each probe's sentinel topic lies under this root; no probe records anything under it.
SENTINEL_ROOT = "goe2mqtt-tests/probe"


class MqttProbe:
    """A plain MQTT client that records everything under its subscriptions.

    Entering it returns once the retained backlog its subscriptions brought is in
    `messages`, so a `mark()` taken right after entering means "from now on": whatever
    `since(mark)` holds was published after the probe was up (an earlier run's retained
    state is before the mark, never taken for this run's). The subscriptions are fixed
    when it is made; it never subscribes again.

    How: Mosquitto handles one client's packets in order and, for a SUBSCRIBE, queues
    every retained message it matches before it sends the SUBACK (handle__subscribe:
    retain__queue, then send__suback). Its queue for a client is delivered in order (a
    QoS 0 message may pass a waiting QoS 1 one, never the reverse). So the sentinel, a
    QoS 1 publish of ours on a topic of this probe's own, sent after the last SUBACK,
    comes back after the whole backlog. tests/integration/test_probe.py holds it to that
    with 2000 retained topics. No probe records a sentinel (its own or another's).
    """

    def __init__(
        self,
        host: str,
        port: int,
        subscriptions: list[str],
        *,
        username: str | None = None,
        password: str | None = None,
        tls_context: ssl.SSLContext | None = None,
    ) -> None:
        identifier = f"probe-{uuid.uuid4().hex[:8]}"
        self._client = aiomqtt.Client(
            host,
            port,
            identifier=identifier,
            username=username,
            password=password,
            tls_context=tls_context,
        )
        self._subscriptions = subscriptions
        self._sentinel = f"{SENTINEL_ROOT}/{identifier}"
        self._settled = asyncio.Event()
        self.messages: list[Received] = []
        self._arrived = asyncio.Event()
        self._task: asyncio.Task[None] | None = None

    async def __aenter__(self) -> MqttProbe:
        await self._client.__aenter__()
        try:
            for topic in [*self._subscriptions, self._sentinel]:
                await self._client.subscribe(topic, qos=1)
            self._task = asyncio.create_task(self._consume())
            await self._settle()
        except BaseException:
            await self.__aexit__()
            raise
        return self

    async def _settle(self) -> None:
        """Wait for a sentinel: any one back means the whole backlog is in. Another goes
        out each second meanwhile: a backlog past Mosquitto's queue for us (1000 QoS 1 by
        default) is cut short, and a sentinel sent while that queue was full would be too.
        (Sent from here, never cancelled: a publish cancelled as its PUBACK comes can
        swallow the cancel in Python 3.11's wait_for.)"""
        deadline = asyncio.get_running_loop().time() + WAIT
        while not self._settled.is_set():
            if asyncio.get_running_loop().time() > deadline:
                raise AssertionError(
                    f"no sentinel of the probe came back on {self._sentinel}"
                    " (does the broker's ACL let the probe write and read it?)"
                )
            await self._client.publish(self._sentinel, b"settled", qos=1)
            with contextlib.suppress(TimeoutError):  # not a wait for anything: resend
                await asyncio.wait_for(self._settled.wait(), 1.0)

    async def __aexit__(self, *exc: object) -> None:
        if self._task is not None:
            self._task.cancel()
        with contextlib.suppress(aiomqtt.MqttError):  # the broker may be gone on purpose
            await self._client.__aexit__(None, None, None)

    async def _consume(self) -> None:
        with contextlib.suppress(aiomqtt.MqttError):
            async for message in self._client.messages:
                topic = message.topic.value
                if topic.startswith(f"{SENTINEL_ROOT}/"):  # ours or another probe's (on #)
                    if topic == self._sentinel:
                        self._settled.set()
                    continue
                payload = message.payload if isinstance(message.payload, bytes) else b""
                self.messages.append(Received(topic, payload, bool(message.retain)))
                self._arrived.set()

    def mark(self) -> int:
        return len(self.messages)

    def since(self, mark: int, topic: str | None = None) -> list[Received]:
        return [m for m in self.messages[mark:] if topic is None or m.topic == topic]

    def latest(self, topic: str) -> Received | None:
        for message in reversed(self.messages):
            if message.topic == topic:
                return message
        return None

    def last_text(self, topic: str) -> str | None:
        message = self.latest(topic)
        return None if message is None else message.text

    async def wait_for(
        self,
        topic: str,
        predicate: Callable[[Received], bool] = lambda m: True,
        *,
        since: int = 0,
        within: float = WAIT,
    ) -> Received:
        async def scan() -> Received:
            seen = since
            while True:
                for message in self.messages[seen:]:
                    if message.topic == topic and predicate(message):
                        return message
                seen = len(self.messages)
                self._arrived.clear()
                await self._arrived.wait()

        try:
            return await asyncio.wait_for(scan(), within)
        except TimeoutError:
            last = self.latest(topic)
            raise AssertionError(
                f"no matching message on {topic} (last: {last.text if last else None!r})"
            ) from None

    async def wait_text(
        self, topic: str, text: str, *, since: int = 0, within: float = WAIT
    ) -> Received:
        return await self.wait_for(topic, lambda m: m.text == text, since=since, within=within)

    async def publish(self, topic: str, payload: str | bytes, *, retain: bool = False) -> None:
        await self._client.publish(topic, payload, qos=1, retain=retain)

    async def command(self, topic: str, payload: str | bytes) -> dict[str, Any]:
        """Publish a command and return its result (the next one on the result topic)."""
        result_topic = topic.rsplit("/", 1)[0] + "/result"
        mark = self.mark()
        await self.publish(topic, payload)
        result: dict[str, Any] = (await self.wait_for(result_topic, since=mark)).json()
        return result


@dataclass
class Setup:
    """One test's installation: unique topics so tests never see each other's retained data."""

    settings: Settings
    topics: Topics
    prefix: str
    simulator: Simulator

    def charger(self, name: str) -> SimulatedCharger:
        return self.simulator.charger(SERIALS[name])

    def state(self, name: str, key: str) -> str:
        return self.topics.state(name, key)

    def cmd(self, name: str, service: str) -> str:
        return self.topics.command(name, service)


def make_settings(
    broker: MosquittoBroker,
    simulator: Simulator,
    *,
    chargers: tuple[str, ...] = ("garage",),
    scan_interval: float = 0.3,
    transport: str = "cloud",
    **charger_overrides: Any,
) -> dict[str, Any]:
    """Settings for chargers of the simulator, through the cloud or their local API."""
    run = uuid.uuid4().hex[:8]

    def address(name: str) -> dict[str, Any]:
        serial = SERIALS[name]
        if transport == "local":  # no serial, no token: the charger tells its serial
            return {"host": simulator.local_hosts[serial]}
        return {"serial": serial, "token": TOKEN, "api_url": simulator.url_for(serial)}

    return {
        "mqtt": {
            "host": broker.host,
            "port": broker.port,
            "client_id": f"goe2mqtt-{run}",
            "base_topic": f"goe{run}",
            "discovery_prefix": f"ha{run}",
        },
        # Any free port: bridges of tests running side by side must not fight for 8099.
        "http": {"listen": "127.0.0.1:0"},
        "chargers": [
            {
                "name": name,
                **address(name),
                "scan_interval": scan_interval,
                "timeout": 1.0,
                **charger_overrides,
            }
            for name in chargers
        ],
    }


# Read-backs after a set: quicker than production's ~5 s, same number of tries.
TEST_CONFIRM_DELAYS = (0.0, 0.2, 0.5)


# Bridges of tests that do not say where to listen take any free port: side by side
# (two bridges in a test, tests of several worktrees at once) they would fight for 8099.
ANY_PORT = "127.0.0.1:0"


class RunningBridge:
    def __init__(self, settings: Settings, **options: Any) -> None:
        options = {"birth_delay": (0.0, 0.05), "confirm_delays": TEST_CONFIRM_DELAYS, **options}
        if "http" not in given(settings):
            settings = replace(settings, http=HttpSettings(listen=ANY_PORT))
        self.bridge = Bridge(settings, **options)
        self.task: asyncio.Task[None] | None = None

    async def start(self) -> None:
        self.task = asyncio.create_task(self.bridge.run())

    async def stop(self) -> None:
        self.bridge.request_stop()
        if self.task is None:
            return
        done, _ = await asyncio.wait({self.task}, timeout=WAIT)
        if not done:
            stacks = io.StringIO()
            for task in asyncio.all_tasks():
                task.print_stack(limit=8, file=stacks)
            self.task.cancel()
            raise AssertionError(f"the bridge did not stop; tasks:\n{stacks.getvalue()}")
        self.task.result()


@contextlib.asynccontextmanager
async def running_bridge(
    setup: Setup, probe: MqttProbe, **options: Any
) -> AsyncIterator[RunningBridge]:
    """The bridge (``options`` as RunningBridge takes them) running, the garage charger
    online; stopped at the end."""
    running = RunningBridge(setup.settings, **options)
    await running.start()
    try:
        await probe.wait_text(setup.topics.availability("garage"), "online")
        yield running
    finally:
        await running.stop()


@pytest.fixture
def transport() -> str:
    """How the bridge reaches the chargers; a module can parametrize it to run both."""
    return "cloud"


@pytest.fixture
async def setup(
    request: pytest.FixtureRequest, broker: MosquittoBroker, simulator: Simulator, transport: str
) -> Setup:
    """Two chargers; a test may override charger settings with indirect parametrization."""
    overrides = getattr(request, "param", {})
    raw = make_settings(
        broker, simulator, chargers=("garage", "carport"), transport=transport, **overrides
    )
    settings = parse_settings(raw)
    return Setup(
        settings, Topics(settings.mqtt.base_topic), settings.mqtt.discovery_prefix, simulator
    )


class Daemon:
    """goe2mqtt as its own process, as users run it; its JSON log read as it comes
    (a pipe nobody reads would stall a chatty daemon)."""

    def __init__(self, config: Path, *, env: dict[str, str] | None = None) -> None:
        self.config = config
        self.env = env
        self.process: asyncio.subprocess.Process | None = None
        self.stderr = b""
        self._reader: asyncio.Task[None] | None = None

    async def start(self) -> None:
        env = self.env
        if not _says_where_to_listen(self.config, env):
            env = {**(env or {}), "GOE2MQTT_HTTP__LISTEN": ANY_PORT}
        self.process = await asyncio.create_subprocess_exec(
            sys.executable, "-m", "goe2mqtt", "--config", str(self.config),
            "--log-format", "json", "--log-level", "debug",
            stdout=asyncio.subprocess.DEVNULL, stderr=asyncio.subprocess.PIPE,
            env=None if env is None else {**os.environ, **env},
        )  # fmt: skip
        self._reader = asyncio.create_task(self._read(self.process))

    async def _read(self, process: asyncio.subprocess.Process) -> None:
        assert process.stderr is not None
        while chunk := await process.stderr.read(1 << 16):
            self.stderr += chunk

    @property
    def running(self) -> bool:
        return self.process is not None and self.process.returncode is None

    async def wait(self, within: float = 3 * WAIT) -> int:
        """The exit code of a daemon that ends by itself."""
        assert self.process is not None
        assert self._reader is not None
        code = await asyncio.wait_for(self.process.wait(), within)
        await self._reader
        return code

    async def end(self, sig: signal.Signals) -> int:
        assert self.process is not None
        if self.process.returncode is None:
            self.process.send_signal(sig)
        return await self.wait()

    def events(self) -> list[dict[str, Any]]:
        events = []
        for line in self.stderr.decode(errors="replace").splitlines():
            with contextlib.suppress(ValueError):
                events.append(json.loads(line))
        return events


def _says_where_to_listen(config: Path, env: dict[str, str] | None) -> bool:
    if any(name.startswith("GOE2MQTT_HTTP__") for name in {**os.environ, **(env or {})}):
        return True
    try:
        raw = yaml.safe_load(config.read_text())
    except (OSError, yaml.YAMLError):
        return True  # no usable config: the daemon says so, and a variable would change that
    return isinstance(raw, dict) and "http" in raw


def write_config(folder: Path, raw: dict[str, Any]) -> Path:
    config = folder / "config.yaml"
    config.write_text(yaml.safe_dump(raw))
    return config


@contextlib.asynccontextmanager
async def garage_bridge(
    broker: MosquittoBroker, simulator: Simulator, *, http_timeout: float | None = None, **mqtt: Any
) -> AsyncIterator[tuple[Topics, RunningBridge, MqttProbe]]:
    """A bridge for the garage charger (polled only when asked), online, and a probe on
    its topics; ``http_timeout`` is the charger's HTTP timeout, ``mqtt`` overrides mqtt keys."""
    raw = make_settings(broker, simulator, scan_interval=60)
    raw["mqtt"].update(mqtt)
    if http_timeout is not None:
        raw["chargers"][0]["timeout"] = http_timeout
    settings = parse_settings(raw)
    topics = Topics(settings.mqtt.base_topic)
    running = RunningBridge(settings)
    await running.start()
    try:
        async with MqttProbe(broker.host, broker.port, [f"{topics.base}/#"]) as probe:
            await probe.wait_text(topics.availability("garage"), "online")
            yield topics, running, probe
    finally:
        await running.stop()


async def stop_process(process: subprocess.Popen[bytes], grace: float) -> None:
    """SIGTERM, SIGKILL after ``grace`` seconds; reaped either way."""
    if process.poll() is not None:
        return
    process.terminate()
    try:
        await asyncio.to_thread(process.wait, grace)
    except subprocess.TimeoutExpired:
        process.kill()
        await asyncio.to_thread(process.wait)


async def cancel(task: asyncio.Task[Any]) -> None:
    """Cancel a task and wait for its end (again until it ends: on 3.11 a wait_for
    inside aiomqtt may swallow one cancel)."""
    while not task.done():
        task.cancel()
        await asyncio.wait({task}, timeout=1.0)


async def until(
    predicate: Callable[[], bool], what: str = "condition", *, within: float = WAIT
) -> None:
    """Wait for a condition (bounded: liveness, not speed)."""

    async def poll() -> None:
        while not predicate():  # noqa: ASYNC110 - the state belongs to other tasks
            await asyncio.sleep(0.01)

    try:
        await asyncio.wait_for(poll(), within)
    except TimeoutError:
        raise AssertionError(f"{what} did not happen") from None


async def until_health_file_connected(health: Path) -> None:
    """Until the bridge's health file (health_file:) says it is connected to the broker."""
    await until(
        lambda: health.exists() and json.loads(health.read_text())["mqtt_connected"],
        "the bridge connected and said so in its health file",
    )


@pytest.fixture
async def probe(broker: MosquittoBroker, setup: Setup) -> AsyncIterator[MqttProbe]:
    subscriptions = [f"{setup.topics.base}/#", f"{setup.prefix}/#"]
    async with MqttProbe(broker.host, broker.port, subscriptions) as running:
        yield running


@pytest.fixture
async def bridge(setup: Setup, probe: MqttProbe) -> AsyncIterator[RunningBridge]:
    """The bridge running against the simulator, every charger online."""
    running = RunningBridge(setup.settings)
    await running.start()
    for charger in setup.settings.chargers:
        await probe.wait_text(setup.topics.availability(charger.name), "online")
    yield running
    await running.stop()


@pytest.fixture
async def polled_charger(
    simulator: Simulator,
) -> AsyncIterator[tuple[Charger, SimulatedCharger, RecordingPublisher]]:
    """One Charger reading the simulator's garage over HTTP, a car plugged in."""
    raw = {
        "mqtt": {"host": "127.0.0.1"},
        "chargers": [{"name": "garage", "serial": SERIALS["garage"], "token": TOKEN,
                      "api_url": simulator.url_for(SERIALS["garage"]), "timeout": 2}],
    }  # fmt: skip
    charger_settings = parse_settings(raw).chargers[0]
    publisher = RecordingPublisher()
    async with aiohttp.ClientSession() as http:
        charger = Charger(
            charger_settings,
            GoeClient(http, charger_settings.base_url, TOKEN),
            publisher,
            topics=Topics("goe2mqtt"),
            discovery_prefix="homeassistant",
            confirm_delays=(0.0,),
        )
        simulated = simulator.charger(SERIALS["garage"])
        simulated.plug_in()
        assert await charger.refresh()
        yield charger, simulated, publisher


@contextlib.contextmanager
def password_broker(
    folder: Path, users: Mapping[str, str], *config: str
) -> Iterator[MosquittoBroker]:
    """A broker that wants a user name and password (one of ``users``: name ->
    password), as a real installation does; ``config``: more lines of its config."""
    passwords = folder / "mosquitto.passwd"
    for n, (user, password) in enumerate(users.items()):
        create = ["-c"] if n == 0 else []
        subprocess.run(["mosquitto_passwd", "-b", *create, str(passwords), user, password],
                       check=True, capture_output=True)  # fmt: skip
    passwords.chmod(0o644)  # Mosquitto drops to this user to read it
    config = ("allow_anonymous false", f"password_file {passwords}", *config)
    with MosquittoBroker(extra_config=config) as running:
        yield running


@contextlib.contextmanager
def mounted_small_disk(
    tmp_path: Path, *, size: str = "1m", options: str = "", name: str = "small-disk"
) -> Iterator[Path]:
    """A tmpfs of ``size`` (1 MiB: a disk that really fills up) mounted with the extra
    mount ``options`` (e.g. "ro") at ``tmp_path / name``, unmounted at the end."""
    if os.geteuid() != 0:
        pytest.skip("mounting a tmpfs needs root (CI runs as root)")
    mount = tmp_path / name
    mount.mkdir()
    flags = ",".join(filter(None, [options, f"size={size}"]))
    subprocess.run(["mount", "-t", "tmpfs", "-o", flags, "tmpfs", str(mount)], check=True)
    try:
        yield mount
    finally:
        subprocess.run(["umount", "-l", str(mount)], check=False)


@pytest.fixture
def small_disk(tmp_path: Path) -> Iterator[Path]:
    """A 1 MiB tmpfs for state_dir: a disk that really fills up."""
    with mounted_small_disk(tmp_path) as mount:
        yield mount


def fill(disk: Path) -> Path:
    """Fill ``disk`` up to its last block; the filler file (delete it to heal the disk)."""
    filler = disk / "filler"
    with open(filler, "wb", buffering=0) as out, contextlib.suppress(OSError):
        while True:
            out.write(b"\0" * 4096)
    return filler
