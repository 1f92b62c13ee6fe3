"""The commands a newcomer runs first: the demo and the standalone simulator."""

from __future__ import annotations

import asyncio
import contextlib
import io
import json
import os
import random
import signal
import socket
import sys
from collections.abc import AsyncIterator

import aiohttp
import aiomqtt
import pytest

from goe2mqtt.sim.broker import BrokerUnavailable, EmbeddedBroker, MosquittoBroker, free_port
from goe2mqtt.sim.demo import BrokerKind, choose_broker, run_demo

from ..conftest import PROCESS_WAIT, WAIT


@pytest.mark.parametrize(
    ("kind", "banner"),
    [("amqtt", "started an embedded MQTT broker (amqtt)"), ("mosquitto", "a private Mosquitto")],
)
async def test_demo_shows_discovery_states_a_command_and_its_result(
    kind: BrokerKind, banner: str
) -> None:
    out = io.StringIO()
    with contextlib.ExitStack() as held:
        # A daemon on this machine holds the default http.listen: the demo takes its own.
        daemon = socket.socket()
        held.callback(daemon.close)
        with contextlib.suppress(OSError):  # taken already: the very case
            daemon.bind(("127.0.0.1", 8099))
            daemon.listen()
        await run_demo(
            mqtt_host=None, mqtt_port=0, duration=9, out=out, pace=0.15, broker_kind=kind
        )
    text = out.getvalue()
    lines = text.splitlines()
    base = "goe2mqtt-demo"
    assert banner in text
    [page] = [line for line in lines if line.startswith("--- the status page (live): http://")]
    assert ":8099/" not in page
    # Discovery as a count per component, not a hundred lines per charger; the
    # try-it block before the stream.
    summary = next(line for line in lines if line.startswith("--- Home Assistant discovery: "))
    assert "174 sensor" in summary, summary  # 2 chargers, 18 of them the ledger's each
    assert not any(line.startswith("goe2mqtt-demo-ha/") for line in lines)
    assert text.index("--- try it yourself") < text.index(f"{base}/garage/availability")
    assert any(line.split() == [f"{base}/garage/availability", "online"] for line in lines)
    assert any(line.split() == [f"{base}/garage/car_status", "charging"] for line in lines)
    results = [
        json.loads(line.split(maxsplit=1)[1])
        for line in lines
        if line.startswith(f"{base}/garage/cmd/result") and line.endswith("}")  # not cut short
    ]
    assert {"service": "wallbox_control", "ok": True, "applied": [{"trx": 0}]} in results
    assert any(r.get("id") == "demo-1" and r["ok"] for r in results)
    # A session: the plug, 1 kWh (and what flowed in real time), the unplug, its cost.
    [ended] = [json.loads(line.split(maxsplit=1)[1]) for line in lines
               if line.startswith(f"{base}/garage/session/ended")]  # fmt: skip
    assert 1000 <= ended["energy_wh"] < 1100
    assert ended["cost"] == round(ended["energy_wh"] / 1000 * 0.30, 2)
    assert ended["ended"] == "unplugged"
    assert "--- try it yourself" in text
    port = text.split(" on 127.0.0.1:", 1)[1].split()[0]
    assert f"mosquitto_sub -h 127.0.0.1 -p {port} -t '{base}/#' -v" in text
    assert lines[-1].split() == [f"{base}/bridge/availability", "offline"]
    assert not any(line.startswith(("goe2mqtt/", "homeassistant/")) for line in lines)


async def test_a_subscription_the_demo_prints_gets_only_its_topic_on_amqtt_too() -> None:
    """amqtt is the fallback broker: the try-it lines must behave there as on Mosquitto."""
    port = free_port()
    demo = asyncio.create_task(
        run_demo(mqtt_host=None, mqtt_port=port, duration=30, out=io.StringIO(), pace=0.15,
                 broker_kind="amqtt")
    )  # fmt: skip
    topic = "goe2mqtt-demo/garage/cmd/result"
    seen: list[str] = []
    try:
        async with asyncio.timeout(3 * WAIT):
            while True:
                try:
                    client = aiomqtt.Client("127.0.0.1", port, identifier="try-it",
                                            protocol=aiomqtt.ProtocolVersion.V311)  # fmt: skip
                    async with client:
                        await client.subscribe(topic, qos=1)
                        async for message in client.messages:
                            seen.append(message.topic.value)
                            if len(seen) >= 3:
                                break
                    break
                except aiomqtt.MqttError:
                    await asyncio.sleep(0.1)  # the demo's broker is not up yet
    finally:
        demo.cancel()
        await asyncio.gather(demo, return_exceptions=True)
    assert seen == [topic] * 3


def test_auto_prefers_mosquitto_for_the_demo() -> None:
    assert choose_broker("auto") == "mosquitto"  # installed here, as on every CI machine


def test_a_demo_with_no_broker_to_start_says_how_to_get_one(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """pip install . without the demo extra, on a machine without Mosquitto: auto took
    amqtt unasked and the demo ended in a ModuleNotFoundError. And goe2mqtt is not on
    PyPI: 'pip install goe2mqtt[demo]' would install whatever bears that name there. And
    a bare pip is the system's (externally-managed on Debian 12), not .ci/setup's venv:
    the line names the Python that runs the demo."""
    monkeypatch.setattr(MosquittoBroker, "available", staticmethod(lambda: False))
    monkeypatch.setattr(EmbeddedBroker, "available", staticmethod(lambda: False))
    kinds: tuple[BrokerKind, ...] = ("auto", "amqtt")
    for kind in kinds:
        with pytest.raises(BrokerUnavailable) as caught:
            choose_broker(kind)
        assert f"{sys.executable} -m pip install '.[demo]'" in str(caught.value), kind
        assert "goe2mqtt[demo]" not in str(caught.value)


@contextlib.asynccontextmanager
async def simulating(port: int, *options: str) -> AsyncIterator[str]:
    """``goe2mqtt simulate`` serving charger 000042 (token secret-sim) on ``port``: the
    line it printed first. At the end of the block a SIGTERM ends it with 0 (a block
    that failed kills it)."""
    process = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "goe2mqtt", "simulate", "--port", str(port), *options,
        "--charger", "000042:secret-sim",
        stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE,
    )  # fmt: skip
    try:
        assert process.stdout is not None
        line = (await asyncio.wait_for(process.stdout.readline(), PROCESS_WAIT)).decode()
        yield line.strip()
        process.send_signal(signal.SIGTERM)
        assert await asyncio.wait_for(process.wait(), WAIT) == 0
    finally:
        if process.returncode is None:
            process.kill()
            await process.wait()


async def test_simulate_serves_the_api_until_sigterm() -> None:
    port = free_port()
    async with simulating(port) as line:
        assert line == f"charger 000042: api_url http://127.0.0.1:{port}/000042"
        url = f"http://127.0.0.1:{port}/000042/api/status"
        async with aiohttp.ClientSession() as http:
            async with http.get(url, params={"filter": "sse", "token": "secret-sim"}) as answer:
                assert await answer.json() == {"sse": "000042"}
            async with http.get(url, params={"token": "wrong"}) as answer:
                assert answer.status == 401


async def test_the_demo_takes_its_port_and_ends_on_sigterm_like_ctrl_c() -> None:
    port = free_port()
    process = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "goe2mqtt", "demo", "--broker", "amqtt", "--mqtt-port", str(port),
        stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE,
    )  # fmt: skip
    assert process.stdout is not None
    try:
        first = await asyncio.wait_for(process.stdout.readline(), PROCESS_WAIT)
        assert f"embedded MQTT broker (amqtt) on 127.0.0.1:{port}" in first.decode()
        while b"goe2mqtt-demo/garage/availability" not in await process.stdout.readline():
            pass  # running: the bridge has published
        process.send_signal(signal.SIGTERM)
        rest, stderr = await asyncio.wait_for(process.communicate(), 3 * WAIT)
    finally:
        if process.returncode is None:
            process.kill()
            await process.wait()
    assert process.returncode == 0, stderr.decode()
    assert rest.decode().splitlines()[-1].split() == [
        "goe2mqtt-demo/bridge/availability",
        "offline",
    ]


@pytest.mark.parametrize("house", [False, True])
async def test_ctrl_c_in_a_terminal_ends_the_demo_and_its_mosquitto_cleanly(house: bool) -> None:
    """A terminal's Ctrl-C goes to the whole foreground process group: the demo's own
    Mosquitto too. The broker must outlive the bridge's clean stop, or the stop ends in
    paho's and asyncio's errors (an unexpected disconnection) instead of offline."""
    command = [sys.executable, "-m", "goe2mqtt", "demo", "--broker", "mosquitto"]
    process = await asyncio.create_subprocess_exec(
        *command, *(["--house"] if house else []), start_new_session=True,
        stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.STDOUT,
    )  # fmt: skip
    assert process.stdout is not None
    # Running: the house's site has decided, or every charger of the demo is online.
    waiting = {"site house: mode fuse | room A: L1"} if house else {
        f"goe2mqtt-demo/{name}/availability online" for name in ("garage", "carport")}  # fmt: skip
    seen: list[str] = []
    try:
        while waiting:
            line = (await asyncio.wait_for(process.stdout.readline(), PROCESS_WAIT)).decode()
            assert line, "".join(seen)
            seen.append(line)
            waiting -= {w for w in waiting if w == " ".join(line.split()) or w in line}
        os.killpg(process.pid, signal.SIGINT)  # what Ctrl-C does
        rest = (await asyncio.wait_for(process.communicate(), 3 * WAIT))[0].decode()
    finally:
        if process.returncode is None:
            os.killpg(process.pid, signal.SIGKILL)
            await process.wait()
    assert process.returncode == 0, rest
    assert "[error" not in rest, rest
    assert "Traceback" not in rest, rest
    if not house:
        assert rest.splitlines()[-1].split() == ["goe2mqtt-demo/bridge/availability", "offline"]
    # Its Mosquitto, in a session of its own, was stopped by the demo: nothing listens.
    port = int(seen[0].split("127.0.0.1:", 1)[1].split(":")[0].split()[0])
    with socket.socket() as probe, pytest.raises(ConnectionRefusedError):
        probe.connect(("127.0.0.1", port))


def free_pair() -> int:
    """A port whose next one is free too (simulate --local serves there), below the
    ephemeral range: there other jobs' outgoing connections took port + 1 now and then."""
    rng = random.Random()
    for _ in range(500):
        port = rng.randrange(20000, 30000)
        with socket.socket() as first, socket.socket() as second:
            try:
                first.bind(("127.0.0.1", port))
                second.bind(("127.0.0.1", port + 1))
            except OSError:
                continue
        return port
    raise AssertionError("no two free ports in a row")


async def test_simulate_local_serves_each_chargers_local_api_without_a_token() -> None:
    port = free_pair()
    async with simulating(port, "--local") as line:
        assert line == (
            f"charger 000042: api_url http://127.0.0.1:{port}/000042, host 127.0.0.1:{port + 1}"
        )
        url = f"http://127.0.0.1:{port + 1}/api/status"
        async with aiohttp.ClientSession() as http, http.get(url, params={"filter": "sse"}) as a:
            assert await a.json() == {"sse": "000042"}


def test_simulate_help_documents_its_controls() -> None:
    import subprocess

    done = subprocess.run([sys.executable, "-m", "goe2mqtt", "simulate", "--help"],
                          capture_output=True, text=True, timeout=60, check=True)  # fmt: skip
    for control in ('{"plug": true}', '"car_full"', '"error"', '"faults"', "--local"):
        assert control in done.stdout, control


def test_simulate_on_a_port_in_use_says_so_in_one_line() -> None:
    """The README's `simulate --port 8080` where 8080 is taken: a 30-line traceback
    ending in OSError. Now one line naming the address, and exit 2."""
    import subprocess

    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        done = subprocess.run(
            [sys.executable, "-m", "goe2mqtt", "simulate", "--port", str(port)],
            capture_output=True, text=True, timeout=PROCESS_WAIT, check=False,
        )  # fmt: skip
    assert done.returncode == 2, done.stderr
    assert "Traceback" not in done.stderr
    assert done.stderr.strip() == (
        f"goe2mqtt simulate: cannot listen on 127.0.0.1:{port}: Address already in use:"
        " give another --port (--local and --mode ws take the ports after it too)"
    )


@pytest.mark.parametrize("options", [("--mode", "mqtt"), ("--house", "home/meter")])
def test_simulate_without_a_broker_at_its_address_says_so_in_one_line(
    options: tuple[str, ...],
) -> None:
    """`simulate --house home/meter` (or --mode mqtt) where no broker listens printed
    "publishes to 127.0.0.1:1883" and then retried in silence, for ever; --broker with
    no port was a ValueError's traceback. Now one line naming the address."""
    import subprocess

    def run(*broker: str) -> subprocess.CompletedProcess[str]:
        command = [sys.executable, "-m", "goe2mqtt", "simulate", "--port", str(free_port()),
                   *options, *broker]  # fmt: skip
        return subprocess.run(command, capture_output=True, text=True, timeout=PROCESS_WAIT,
                              check=False)  # fmt: skip

    with socket.socket() as bound:  # bound, never listening: a connection is refused
        bound.bind(("127.0.0.1", 0))
        port = bound.getsockname()[1]
        done = run("--broker", f"127.0.0.1:{port}")
    assert done.returncode == 1, done.stderr
    assert done.stdout == ""
    assert done.stderr.strip() == (
        f"goe2mqtt simulate: cannot reach the broker at 127.0.0.1:{port}: Connection refused"
        " (start one there, or give --broker HOST:PORT)"
    )
    done = run("--broker", "127.0.0.1:mqtt")
    assert done.returncode == 2
    assert done.stderr.strip() == (
        "goe2mqtt simulate: --broker 127.0.0.1:mqtt: give HOST:PORT (e.g. 127.0.0.1:1883)"
    )


def test_entities_lists_plainly_and_markdown_is_the_readme_table() -> None:
    import subprocess

    def run(*args: str) -> str:
        command = [sys.executable, "-m", "goe2mqtt", "entities", *args]
        done = subprocess.run(command, capture_output=True, text=True, timeout=60, check=True)
        return done.stdout

    plain, table = run(), run("--markdown")
    assert plain != table
    assert plain.splitlines()[0].split() == ["leaf", "component", "go-e", "command"]
    assert any(line.split()[:2] == ["charging_current", "number"] for line in plain.splitlines())
    assert table.startswith("<!-- entities:start")


async def test_a_demo_whose_bridge_cannot_start_ends_with_the_reason(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    import goe2mqtt.sim.demo as demo

    with socket.socket() as held:
        held.bind(("127.0.0.1", 0))
        held.listen()
        taken = held.getsockname()[1]
        monkeypatch.setattr(demo, "free_port", lambda host="127.0.0.1": taken)
        # It hung here once: the viewer's cancel never ended, the reason never shown.
        reason = f"http.listen: cannot listen on 127.0.0.1:{taken}"
        with pytest.raises(demo.DemoFailed, match=reason):
            await asyncio.wait_for(
                run_demo(mqtt_host=None, mqtt_port=0, duration=30, out=io.StringIO(),
                         pace=0.15, broker_kind="mosquitto"),
                WAIT,
            )  # fmt: skip
