"""`goe2mqtt simulate`: simulated chargers on loopback, over HTTP, websocket or MQTT."""

from __future__ import annotations

import asyncio
import signal
import sys
from collections.abc import Sequence
from typing import Literal

from goe2mqtt.sim.charger import MODELS, SimulatedCharger
from goe2mqtt.sim.charger_mqtt import MqttCharger
from goe2mqtt.sim.simulator import Simulator

SIMULATE_HELP = """\
Serve simulated go-e chargers (API v2) on loopback: the cloud API at
http://HOST:PORT/SERIAL (use it as api_url with the charger's token), and with
--local each charger's local API at HOST:PORT+1, +2, ... (use it as host:).
They keep state: a set changes what the next status returns, the car charges.
--mode ws adds each charger's websocket at ws://HOST:PORT+N/ws (a config with host:
and password:); --mode mqtt makes each charger publish to --broker itself (a config
with transport: mqtt and the serial). --house TOPIC publishes a grid meter to --broker
for a site (sites: meter_topic): a seeded house's load plus what the chargers draw.

Drive them from outside (JSON over HTTP):
  curl -X POST http://127.0.0.1:8080/_sim/012345 -d '{"plug": true}'
      plug a car in ("plug": false unplugs; "auth_required": true waits for a card)
  curl -X POST .../_sim/012345 -d '{"car_full": true}'      the car stops taking power
  curl -X POST .../_sim/012345 -d '{"error": 1}'            set the charger's error code
  curl -X POST .../_sim/012345 -d '{"faults": {"http_status": 500}}'
      faults: http_status, delay (s), garbage, success_false, body, only ("status" or
      "set"), times, retry_after, reason, reject_sets, drop_sets, values, missing,
      ws (garbage, bad_types, silent, big_frame, auth_loop, no_auth, refuse);
      {"faults": {}} heals
  curl http://127.0.0.1:8080/_sim/012345      its status, faults and the sets it got
"""


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

    asyncio.run(serve())
    return 0
