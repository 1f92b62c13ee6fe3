"""`goe2mqtt simulate`: simulated chargers on loopback, over HTTP, websocket or MQTT."""

from __future__ import annotations

import asyncio
import contextlib
import errno
import os
import re
import signal
import socket
import sys
from collections.abc import Sequence
from typing import Literal

from goe2mqtt.sim.charger import MODELS, SimulatedCharger
from goe2mqtt.sim.charger_mqtt import MqttCharger
from goe2mqtt.sim.simulator import Simulator

BROKER_WAIT = 5.0  # seconds for the broker's TCP answer before the simulator starts


def simulate(
    host: str,
    port: int,
    specs: Sequence[str],
    *,
    mode: Literal["http", "ws", "mqtt"] = "http",
    local: bool = False,
    password: str = "demo-password",
    hash_kind: Literal["pbkdf2", "bcrypt"] = "pbkdf2",
    broker: str = "127.0.0.1:1883",
    prefix: str = "go-eCharger",
    house: str | None = None,
) -> int:
    """Serve until SIGTERM/SIGINT; 2 when a --charger spec is wrong."""
    chargers = []
    for spec in specs:
        serial, _, rest = spec.partition(":")
        token, _, model = rest.partition(":")
        if model and model not in MODELS:
            print(f"--charger {spec}: unknown model {model!r} ({', '.join(MODELS)})",
                  file=sys.stderr)  # fmt: skip
            return 2
        chargers.append(SimulatedCharger(
            serial, token or None, model_name=model or "home22",
            password=password if mode == "ws" else None, hash_kind=hash_kind,
        ))  # fmt: skip
    simulator = Simulator(chargers)
    parsed = _broker_address(broker)
    if parsed is None:
        print(f"goe2mqtt simulate: --broker {broker}: give HOST:PORT (e.g. 127.0.0.1:1883)",
              file=sys.stderr)  # fmt: skip
        return 2
    broker_host, broker_port = parsed
    shown = f"[{broker_host}]" if ":" in broker_host else broker_host
    broker = f"{shown}:{broker_port}"  # as said in every line below

    async def serve() -> str | None:
        if mode == "mqtt" or house is not None:
            # Else the chargers and the meter retry in silence, as firmware does, while
            # the user reads "publishes to 127.0.0.1:1883" and waits for a message.
            problem = await _unreachable(broker_host, broker_port)
            if problem is not None:
                return problem
        await simulator.start(host, port)
        publishers = []
        for index, charger in enumerate(chargers, start=1):
            where = f"api_url {simulator.url_for(charger.serial)}"
            if local or mode == "ws":
                local_host = await simulator.serve_local(charger.serial, host, port + index)
                where += f", host {local_host}"
            if mode == "ws":
                where += f", websocket ws://{local_host}/ws (password {password}, {hash_kind})"
            if mode == "mqtt":
                wallbox = MqttCharger(charger, broker_host, broker_port, prefix=prefix)
                publishers.append(asyncio.create_task(wallbox.run()))
                where += f", publishes to {broker} as {wallbox.base}/+"
            print(f"charger {charger.serial}: {where}", flush=True)
        if house is not None:  # a grid meter for a site: the house plus these chargers
            from goe2mqtt.sim.house_demo import publish_house_meter

            publishers.append(asyncio.create_task(publish_house_meter(
                simulator, host=broker_host, port=broker_port, topic=house,
            )))  # fmt: skip
            print(f"house meter: publishes to {broker} as {house} every 2 s", flush=True)
        stop = asyncio.Event()
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGTERM, signal.SIGINT):
            loop.add_signal_handler(sig, stop.set)
        await stop.wait()
        for task in publishers:
            task.cancel()
        await simulator.stop()
        return None

    try:
        problem = asyncio.run(serve())
    except OSError as exc:
        if exc.errno not in (errno.EADDRINUSE, errno.EADDRNOTAVAIL, errno.EACCES):
            raise
        # A port in use (8080 often is): one line, not a traceback.
        print(f"goe2mqtt simulate: cannot listen on {_address(exc)}: {os.strerror(exc.errno)}:"
              " give another --port (--local and --mode ws take the ports after it too)",
              file=sys.stderr)  # fmt: skip
        return 2
    if problem is not None:
        print(f"goe2mqtt simulate: cannot reach the broker at {broker}: {problem} (start one"
              " there, or give --broker HOST:PORT)", file=sys.stderr)  # fmt: skip
        return 1
    return 0


def _broker_address(text: str) -> tuple[str, int] | None:
    """(host, port) of --broker: HOST:PORT, an IPv6 host in brackets; HOST alone is 1883."""
    found = re.fullmatch(r"(\[[0-9A-Fa-f:.]+\]|[^:\[\]/\s]+)(?::([0-9]{1,5}))?", text)
    if found is None or not 0 < int(found[2] or 1883) < 65536:
        return None
    return found[1].strip("[]"), int(found[2] or 1883)


async def _unreachable(host: str, port: int) -> str | None:
    """Why nothing answers at host:port (refused, no such host, no answer), or None."""
    try:
        _, writer = await asyncio.wait_for(asyncio.open_connection(host, port), BROKER_WAIT)
    except TimeoutError:
        return f"no answer within {BROKER_WAIT:.0f} s"
    except socket.gaierror as exc:  # its errno is getaddrinfo's, not os.strerror's
        return exc.strerror or str(exc)
    except OSError as exc:  # asyncio's strerror is "Connect call failed (...)"
        return os.strerror(exc.errno) if exc.errno else str(exc)
    writer.close()
    with contextlib.suppress(OSError):
        await writer.wait_closed()
    return None


def _address(exc: OSError) -> str:
    """host:port of a bind that failed, from asyncio's words for it."""
    found = re.search(r"\('([^']*)', (\d+)", str(exc))
    return f"{found[1]}:{found[2]}" if found else "the address"
