"""`goe2mqtt demo`: simulator + broker + bridge, with the topic stream printed live.

A newcomer sees discovery, states, a command and its result within seconds,
without a charger, a cloud account or a broker of their own.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import shutil
import signal
import sys
import tempfile
import time
from collections import Counter
from collections.abc import Callable, Sequence
from typing import Any, Literal, TextIO

import aiomqtt

from goe2mqtt.bridge.process import Bridge
from goe2mqtt.config.settings import parse_settings
from goe2mqtt.sim.broker import (
    BrokerUnavailable,
    EmbeddedBroker,
    MosquittoBroker,
    free_port,
)
from goe2mqtt.sim.simulator import SimulatedCharger, Simulator
from goe2mqtt.util.aio import wait_until_set

DEMO_CHARGERS = (("garage", "000001"), ("carport", "000002"))
DEMO_TOKEN = "demo-token"  # the simulator's, not a real cloud key
DEMO_PASSWORD = "demo-password"  # the garage's websocket password (the simulator's)
# Its own namespace: on a broker shared with a real bridge the demo must neither
# command nor announce nor clear anything of the real installation.
DEMO_BASE = "goe2mqtt-demo"
DEMO_DISCOVERY_PREFIX = "goe2mqtt-demo-ha"


BrokerKind = Literal["auto", "amqtt", "mosquitto"]


def choose_broker(kind: BrokerKind) -> Literal["amqtt", "mosquitto"]:
    """auto: a private Mosquitto when it is installed (the broker users run), else amqtt
    (the [demo] extra: a broker in Python, for machines without Mosquitto)."""
    if kind == "auto" and MosquittoBroker.available():
        return "mosquitto"
    if kind in ("auto", "amqtt") and not EmbeddedBroker.available():
        # goe2mqtt is not on PyPI: the extra comes from this repository, into this
        # Python's environment (a bare pip is the system's, or none: .ci/setup's venv).
        raise BrokerUnavailable(
            f"amqtt is not installed: {sys.executable} -m pip install '.[demo]' in this"
            " repository"
            + (" (or install Mosquitto: apt-get install mosquitto)" if kind == "auto" else "")
        )
    return "amqtt" if kind == "auto" else kind


def _short(payload: bytes | Any, width: int = 110) -> str:
    if not isinstance(payload, bytes):
        payload = str(payload).encode()
    text = payload.decode("utf-8", errors="replace")
    return text if len(text) <= width else text[: width - 1] + "…"


DISCOVERY_QUIET = 1.0  # s without a new config: the burst is over, print its summary
# s a stopped bridge's last word (offline) may take to reach the viewer before it is
# cancelled: under load the broker's delivery came after the cancel, and the demo's
# output ended without it.
LAST_WORD_WITHIN = 3.0
BRIDGE_AVAILABILITY = f"{DEMO_BASE}/bridge/availability"


async def _print_stream(
    host: str,
    port: int,
    out: TextIO,
    plugged_at: dict[str, float] | None = None,
    offline_seen: asyncio.Event | None = None,
) -> None:
    """Every state, command and result as it comes; Home Assistant's configs (a hundred
    per charger) as one line per burst: how many of each component. ``offline_seen`` is
    set when the bridge's availability says offline (the last line of a stop)."""
    configs: Counter[str] = Counter()
    summary: asyncio.TimerHandle | None = None

    def summarise() -> None:
        counted = ", ".join(f"{n} {component}" for component, n in sorted(configs.items()))
        print(f"--- Home Assistant discovery: {sum(configs.values())} configs ({counted}) under"
              f" {DEMO_DISCOVERY_PREFIX}/", file=out, flush=True)  # fmt: skip
        configs.clear()

    loop = asyncio.get_running_loop()
    async with aiomqtt.Client(host, port, identifier="goe2mqtt-demo-viewer") as client:
        await client.subscribe(f"{DEMO_BASE}/#")
        await client.subscribe(f"{DEMO_DISCOVERY_PREFIX}/+/{DEMO_BASE}/+/config")
        async for message in client.messages:
            topic = message.topic.value
            if topic.startswith(f"{DEMO_DISCOVERY_PREFIX}/"):
                if isinstance(message.payload, bytes) and message.payload:
                    configs[topic.split("/")[1]] += 1
                    if summary is not None:
                        summary.cancel()
                    summary = loop.call_later(DISCOVERY_QUIET, summarise)
                continue
            # A finished session whole: it is what the books keep.
            width = 10_000 if topic.endswith("/session/ended") else 110
            print(f"{topic:<60} {_short(message.payload, width)}", file=out, flush=True)
            said_offline = topic == BRIDGE_AVAILABILITY and message.payload == b"offline"
            if said_offline and offline_seen is not None:
                offline_seen.set()
            if plugged_at and topic == f"{DEMO_BASE}/garage/car_status":
                took = 1000 * (time.monotonic() - plugged_at.pop("garage"))
                print(
                    f"--- pushed over the garage's websocket: the plug reached MQTT in"
                    f" {took:.0f} ms (polling: up to scan_interval)",
                    file=out,
                    flush=True,
                )


class DemoFailed(Exception):
    """The demo's bridge stopped by itself (its error says why)."""


async def cancel_all(tasks: Sequence[asyncio.Task[Any]]) -> None:
    """Cancel the demo's tasks; a viewer cancelled while its connection is still being
    made can take its time to end (aiomqtt): wait a little, not forever."""
    for task in tasks:
        task.cancel()
    await asyncio.wait(tasks, timeout=5)
    for task in tasks[1:]:  # the bridge's own error is raise_if_failed's to tell
        # Seen, whenever it ends: a viewer cut off by the broker stopping is no news.
        task.add_done_callback(_seen)


def _seen(task: asyncio.Task[Any]) -> None:
    if not task.cancelled():
        task.exception()


async def leave_nothing(
    state_dir: str, mosquitto: MosquittoBroker | None, embedded: EmbeddedBroker | None
) -> None:
    """Remove a demo's state folder and stop the broker it started, if it started one."""
    shutil.rmtree(state_dir, ignore_errors=True)
    if mosquitto is not None:
        mosquitto.close()
    if embedded is not None:
        await embedded.stop()


def raise_if_failed(bridge: asyncio.Task[Any]) -> None:
    """A bridge that could not start (http.listen in use, say) ends the demo with its
    reason, not with silence."""
    if bridge.done() and not bridge.cancelled() and bridge.exception() is not None:
        failed = bridge.exception()
        raise DemoFailed(f"the bridge stopped: {failed}") from failed


def try_it_yourself(host: str, port: int) -> str:
    """The exact command lines for this demo's broker, printed after the script."""
    broker = f"-h {host} -p {port}"
    return "\n".join(
        [
            "--- try it yourself (while the demo runs):",
            f"    mosquitto_sub {broker} -t '{DEMO_BASE}/#' -v",
            f"    mosquitto_pub {broker} -q 1 -t '{DEMO_BASE}/garage/cmd/change_charging_power'"
            ' -m \'{"charging_power": 12, "id": "mine"}\'',
            f"    mosquitto_pub {broker} -q 1 -t '{DEMO_BASE}/garage/cmd/start_charging' -m ''",
            f"    mosquitto_pub {broker} -q 1 -t '{DEMO_BASE}/garage/cmd/force_state' -m neutral",
            f"    mosquitto_pub {broker} -q 1 -t '{DEMO_BASE}/garage/cmd/energy_limit' -m 5.5",
            f"    mosquitto_pub {broker} -t '{DEMO_BASE}/garage/cmd/pv_grid' -m -2500",
            f"    mosquitto_sub {broker} -t '{DEMO_BASE}/garage/cmd/result' -v",
        ]
    )


async def _script(
    host: str,
    port: int,
    simulator: Simulator,
    out: TextIO,
    pace: float,
    plugged_at: dict[str, float],
) -> None:
    """What a user would do: plug in a car, press the button, change the current."""
    garage = simulator.charger(DEMO_CHARGERS[0][1])
    cmd = f"{DEMO_BASE}/garage/cmd"
    async with aiomqtt.Client(host, port, identifier="goe2mqtt-demo-user") as client:

        def plug_in() -> None:
            garage.plug_in(auth_required=True)
            plugged_at["garage"] = time.monotonic()

        # (pause, what happens, a command's topic and payload, or what the car does)
        steps: list[tuple[float, str, str | None, str | Callable[[], None]]] = [
            (4, "a car is plugged in at the garage (authentication required): a session"
             " opens ({base}/garage/session)", None, plug_in),
            (4, "pressing 'Wallbox control' (authenticates, charging starts)",
             f"{cmd}/wallbox_control", "PRESS"),
            (6, "changing the charging current to 10 A", f"{cmd}/change_charging_power",
             json.dumps({"charging_power": 10, "id": "demo-1"})),
            (4, "energy flows: the simulator adds 1 kWh at once (an hour at 1 kW)", None,
             lambda: garage.deliver(1000)),
            (6, "a bad command: 99 A is out of range", f"{cmd}/change_charging_power", "99"),
            (6, "stopping the charge", f"{cmd}/stop_charging", ""),
            (6, "a 20 kWh energy limit", f"{cmd}/energy_limit", "20"),
            (6, "feeding the meter: 2.5 kW exported (the bridge writes it again every 5 s;"
             " one reading only here, so pv_feed_stale follows 30 s later)",
             f"{cmd}/pv_grid", "-2500"),
            (6, "force state back to neutral: the charger's own logic decides",
             f"{cmd}/force_state", "neutral"),
            (4, "the car is unplugged: the session is on the books, with its energy and cost"
             " (session/ended)", None, garage.unplug),
        ]  # fmt: skip
        for delay, title, topic, payload in steps:
            await asyncio.sleep(delay * pace)
            print(f"\n--- {title.format(base=DEMO_BASE)}", file=out, flush=True)
            if callable(payload):
                payload()
            elif topic is not None:
                await client.publish(topic, payload, qos=1)
        await asyncio.sleep(2 * pace)
        print(f"\n{try_it_yourself(host, port)}\n", file=out, flush=True)


async def clean_up(host: str, port: int, protocol: str) -> int:
    """Clear every retained message the demo left on a broker (the devices leave HA)."""
    version = aiomqtt.ProtocolVersion.V5 if protocol == "5" else aiomqtt.ProtocolVersion.V311
    topics: set[str] = set()
    async with aiomqtt.Client(
        host, port, identifier="goe2mqtt-demo-cleanup", protocol=version
    ) as client:
        await client.subscribe(f"{DEMO_BASE}/#")
        await client.subscribe(f"{DEMO_DISCOVERY_PREFIX}/#")
        with contextlib.suppress(TimeoutError):
            async with asyncio.timeout(1.0):
                async for message in client.messages:
                    if message.retain and message.payload:
                        topics.add(message.topic.value)
        # All at once, each still acknowledged: one at a time, a broker without
        # TCP_NODELAY made each wait ~40 ms for a delayed ACK (466 took 22 s). aiomqtt
        # warns of every publish past 10 pending: here that many are meant.
        client.pending_calls_threshold = max(client.pending_calls_threshold, len(topics))
        await asyncio.gather(
            *(client.publish(topic, b"", qos=1, retain=True) for topic in sorted(topics))
        )
    return len(topics)


async def run_demo(
    *,
    mqtt_host: str | None,
    mqtt_port: int | None,
    duration: float | None,
    out: TextIO = sys.stdout,
    pace: float = 1.0,
    broker_kind: BrokerKind = "auto",
    handle_signals: bool = False,
) -> None:
    """Run until ``duration``, Ctrl-C or SIGTERM; ``pace`` scales the script's pauses."""
    embedded: EmbeddedBroker | None = None
    mosquitto: MosquittoBroker | None = None
    protocol = "5"
    if mqtt_host is not None:
        host, port = mqtt_host, mqtt_port or 1883
    elif choose_broker(broker_kind) == "amqtt":
        embedded = EmbeddedBroker(port=mqtt_port or None)
        await embedded.start()
        host, port, protocol = embedded.host, embedded.port, "3.1.1"  # amqtt has no MQTT 5
        print(f"--- started an embedded MQTT broker (amqtt) on {host}:{port}", file=out)
    else:
        mosquitto = MosquittoBroker(port=mqtt_port or None, own_session=True)
        mosquitto.start()
        host, port = mosquitto.host, mosquitto.port
        print(f"--- started a private Mosquitto on {host}:{port}", file=out)
    # The garage pushes over its local websocket; the carport is polled through the cloud.
    garage_serial, carport_serial = (serial for _, serial in DEMO_CHARGERS)
    simulator = Simulator(
        [SimulatedCharger(garage_serial, DEMO_TOKEN, password=DEMO_PASSWORD, hash_kind="bcrypt"),
         SimulatedCharger(carport_serial, DEMO_TOKEN)],
        delta_interval=pace,
    )  # fmt: skip
    await simulator.start()
    garage_host = await simulator.serve_local(garage_serial)
    state_dir = tempfile.mkdtemp(prefix="goe2mqtt-demo-")  # the demo leaves no journal behind
    # A free port of its own: a daemon already on 8099 must not stop the demo.
    page = f"127.0.0.1:{free_port()}"
    settings = parse_settings(
        {
            "state_dir": state_dir,
            "http": {"listen": page},
            "tariff": {"price_per_kwh": 0.30, "currency": "EUR"},  # the session's cost
            "mqtt": {
                "host": host,
                "port": port,
                "client_id": "goe2mqtt-demo",
                "base_topic": DEMO_BASE,
                "discovery_prefix": DEMO_DISCOVERY_PREFIX,
                "protocol": protocol,
            },
            "chargers": [
                {
                    "name": "garage",
                    "host": garage_host,
                    "password": DEMO_PASSWORD,
                    "scan_interval": 2 * pace,
                },
                {
                    "name": "carport",
                    "serial": carport_serial,
                    "token": DEMO_TOKEN,
                    "api_url": simulator.url_for(carport_serial),
                    "scan_interval": 2 * pace,  # the script waits 4 units after a change
                },
            ],
        }
    )
    print(
        f"--- simulated go-e cloud at {simulator.base_url} (the carport, polled); the"
        f" garage's websocket at ws://{garage_host}/ws (pushes); topics under {DEMO_BASE}/;"
        " Ctrl-C to stop",
        file=out,
    )
    print(f"--- the status page (live): http://{page}/", file=out)
    print(f"{try_it_yourself(host, port)}\n", file=out, flush=True)
    bridge = Bridge(settings)
    plugged_at: dict[str, float] = {}
    offline_seen = asyncio.Event()
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    signals = (signal.SIGTERM, signal.SIGINT) if handle_signals else ()
    for sig in signals:
        loop.add_signal_handler(sig, stop.set)
    tasks = [
        asyncio.create_task(bridge.run()),
        asyncio.create_task(_print_stream(host, port, out, plugged_at, offline_seen)),
        asyncio.create_task(_script(host, port, simulator, out, pace, plugged_at)),
        asyncio.create_task(stop.wait()),
    ]
    try:
        await asyncio.wait(
            {tasks[0], tasks[3]}, timeout=duration, return_when=asyncio.FIRST_COMPLETED
        )
    finally:
        for sig in signals:
            loop.remove_signal_handler(sig)
        offline_seen.clear()  # an offline from before the stop is not its last word
        bridge.request_stop()
        await asyncio.wait({tasks[0]}, timeout=15)
        if not tasks[1].done():
            await wait_until_set(offline_seen, LAST_WORD_WITHIN)
        await cancel_all(tasks)
        if mqtt_host is not None:
            with contextlib.suppress(aiomqtt.MqttError, OSError):
                cleared = await clean_up(host, port, protocol)
                print(f"--- removed the demo's {cleared} retained messages", file=out)
        await simulator.stop()
        await leave_nothing(state_dir, mosquitto, embedded)
    raise_if_failed(tasks[0])
