"""`goe2mqtt simulate`: simulated chargers on loopback, over HTTP, websocket or MQTT."""

from __future__ import annotations

import asyncio
import errno
import os
import re
import signal
import sys
from collections.abc import Sequence
from typing import Literal

from goe2mqtt.sim.charger import MODELS, SimulatedCharger
from goe2mqtt.sim.charger_mqtt import MqttCharger
from goe2mqtt.sim.simulator import Simulator


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
    broker_host, _, broker_port = broker.rpartition(":")

    async def serve() -> None:
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
                wallbox = MqttCharger(charger, broker_host, int(broker_port), prefix=prefix)
                publishers.append(asyncio.create_task(wallbox.run()))
                where += f", publishes to {broker} as {wallbox.base}/+"
            print(f"charger {charger.serial}: {where}", flush=True)
        if house is not None:  # a grid meter for a site: the house plus these chargers
            from goe2mqtt.sim.house_demo import publish_house_meter

            publishers.append(asyncio.create_task(publish_house_meter(
                simulator, host=broker_host, port=int(broker_port), topic=house,
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

    try:
        asyncio.run(serve())
    except OSError as exc:
        if exc.errno not in (errno.EADDRINUSE, errno.EADDRNOTAVAIL, errno.EACCES):
            raise
        # A port in use (8080 often is): one line, not a traceback.
        print(f"goe2mqtt simulate: cannot listen on {_address(exc)}: {os.strerror(exc.errno)}:"
              " give another --port (--local and --mode ws take the ports after it too)",
              file=sys.stderr)  # fmt: skip
        return 2
    return 0


def _address(exc: OSError) -> str:
    """host:port of a bind that failed, from asyncio's words for it."""
    found = re.search(r"\('([^']*)', (\d+)", str(exc))
    return f"{found[1]}:{found[2]}" if found else "the address"
