"""The command line's words: every sub-command, its options and their help."""

from __future__ import annotations

import argparse
import os

from goe2mqtt import __version__
from goe2mqtt.ledger.record import SUMMARIES
from goe2mqtt.util.logs import LEVELS

# The simulator's models (sim/models.py MODELS; a unit test keeps the two alike): named
# here so that the daemon, which builds this parser too, does not import the simulator.
MODEL_NAMES = ("home22", "home11", "gemini22", "legacy")

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
  curl -X POST .../_sim/012345 -d '{"deliver_wh": 1000}'    1 kWh charged at once (over
      ~1500 Wh in one step the session ledger sees a counter_jump and flags it)
  curl -X POST .../_sim/012345 -d '{"error": 1}'            set the charger's error code
  curl -X POST .../_sim/012345 -d '{"faults": {"http_status": 500}}'
      faults: http_status, delay (s), garbage, success_false, body, only ("status" or
      "set"), times, retry_after, reason, reject_sets, drop_sets, values, missing,
      ws (garbage, bad_types, silent, big_frame, auth_loop, no_auth, refuse);
      {"faults": {}} heals
  curl http://127.0.0.1:8080/_sim/012345      its status, faults and the sets it got
"""


def _add_config(parser: argparse.ArgumentParser, suppress: bool) -> None:
    parser.add_argument(
        "--config",
        "-c",
        # SUPPRESS on sub-commands: a --config given before the sub-command stays.
        default=argparse.SUPPRESS if suppress else os.environ.get("GOE2MQTT_CONFIG", "config.yaml"),
        help="the config file (default: $GOE2MQTT_CONFIG, else ./config.yaml)",
    )


def _add_logging(parser: argparse.ArgumentParser, suppress: bool) -> None:
    parser.add_argument(
        "--log-level",
        choices=LEVELS,
        default=argparse.SUPPRESS if suppress else "info",
        help="the least important events logged (default: info; debug adds each poll,"
        " publish batch and command step)",
    )
    parser.add_argument(
        "--log-format",
        choices=("auto", "console", "json"),
        default=argparse.SUPPRESS if suppress else "auto",
        help="console lines or JSON lines (default: auto, console on a terminal)",
    )


def command_line() -> argparse.ArgumentParser:
    """Every sub-command and its options, with the help a user reads."""
    parser = argparse.ArgumentParser(
        prog="goe2mqtt",
        description="Bridge go-e chargers to MQTT with Home Assistant discovery."
        " Without a command: run the bridge.",
    )
    _add_config(parser, suppress=False)
    _add_logging(parser, suppress=False)
    parser.add_argument("--version", action="version", version=f"goe2mqtt {__version__}")
    commands = parser.add_subparsers(dest="command", metavar="COMMAND")

    run = commands.add_parser(
        "run", help="run the bridge (the default)",
        description="Run the bridge: poll the configured chargers, publish to MQTT, take"
        " commands. Stops cleanly on SIGTERM/SIGINT.",
    )  # fmt: skip
    _add_config(run, suppress=True)
    _add_logging(run, suppress=True)

    check = commands.add_parser(
        "check-config", help="validate the config and exit (--connect: try it too)",
        description="Validate the configuration (the file and GOE2MQTT_* variables) and"
        " print every problem at once, naming its key; exit 2 if there is one.",
    )  # fmt: skip
    _add_config(check, suppress=True)
    _add_logging(check, suppress=True)
    check.add_argument(
        "--connect",
        action="store_true",
        help="also connect to the broker and ask every charger for its status, and say"
        " plainly what fails (exit 1 if anything does)",
    )

    health = commands.add_parser(
        "healthcheck", help="exit 0 if the running bridge is healthy",
        description="Read the health file the running bridge writes (every quarter"
        " keep-alive, at most 30 s): exit 0 if it is fresh and MQTT is connected (an"
        " offline charger is reported, but is the charger's problem, not the bridge's);"
        " else 1, saying why.",
    )  # fmt: skip
    health.add_argument(
        "--file",
        default=os.environ.get("GOE2MQTT_HEALTH_FILE"),
        help="the health file the bridge writes (default: $GOE2MQTT_HEALTH_FILE, else the"
        " config's health_file)",
    )
    _add_config(health, suppress=True)
    health.add_argument(
        "--max-age",
        type=float,
        default=90.0,
        help="seconds after which the file counts as stale (default 90)",
    )
    health.add_argument(
        "--http",
        nargs="?",
        const="readyz",
        choices=("readyz", "healthz"),
        help="ask the running bridge's /readyz (or /healthz) at the config's http.listen"
        " instead of reading the file (the container image's HEALTHCHECK); with"
        " http.enabled false, the file after all",
    )

    entities = commands.add_parser(
        "entities", help="list every entity, its go-e keys and its command",
        description="Every entity the bridge can announce: one line each, or the README's"
        " table with --markdown.",
    )  # fmt: skip
    entities.add_argument(
        "--markdown",
        action="store_true",
        help="the README's table: units, values and what each command accepts",
    )

    sessions = commands.add_parser(
        "sessions", help="the session ledger: every charge, its energy, card and cost",
        description="Every charging session on the books (readable while the bridge runs):"
        " a table, CSV (one session a line, a header row) or JSON; or totals per month and"
        " card or charger with --summary.",
    )  # fmt: skip
    _add_config(sessions, suppress=True)
    sessions.add_argument("--charger", help="only this charger's sessions (its name)")
    sessions.add_argument("--since", metavar="YYYY-MM-DD", help="sessions started on or after")
    sessions.add_argument("--until", metavar="YYYY-MM-DD", help="sessions started up to this day")
    sessions.add_argument("--card", metavar="NAME", help="only this card's (its name, app, none)")
    sessions.add_argument("--format", choices=("table", "csv", "json"), default="table",
                          help="table (default), csv or json")  # fmt: skip
    sessions.add_argument(
        # Each choice holds a comma: argparse's {a,b} would show month,card,month,charger.
        "--summary", choices=SUMMARIES, metavar=" | ".join(SUMMARIES),
        help="totals per month and card (or charger): sessions, kWh, grid and PV kWh, cost",
    )  # fmt: skip

    simulate = commands.add_parser(
        "simulate", help="serve simulated chargers on loopback",
        description=SIMULATE_HELP, formatter_class=argparse.RawDescriptionHelpFormatter,
    )  # fmt: skip
    simulate.add_argument("--listen", default="127.0.0.1", help="address (default 127.0.0.1)")
    simulate.add_argument("--port", type=int, default=8080, help="port (default 8080)")
    simulate.add_argument(
        "--local",
        action="store_true",
        help="also serve each charger's local HTTP API v2 (/api/status, no token) on the"
        " next ports (8081, 8082, ...), for a config with host: instead of the cloud",
    )
    simulate.add_argument(
        "--mode",
        choices=("http", "ws", "mqtt"),
        default="http",
        help="http: the HTTP APIs only (default); ws: each charger's local API and its"
        " websocket (/ws, asks for --password); mqtt: each charger publishes to --broker"
        " itself, as with transport: mqtt",
    )
    simulate.add_argument(
        "--password",
        default="demo-password",
        help="ws: the chargers' password (default demo-password)",
    )
    simulate.add_argument(
        "--hash",
        choices=("pbkdf2", "bcrypt"),
        default="pbkdf2",
        help="ws: the password hash the chargers ask for",
    )
    simulate.add_argument(
        "--broker",
        default="127.0.0.1:1883",
        help="--mode mqtt and --house: the broker they publish to (HOST:PORT, default"
        " 127.0.0.1:1883, a broker on this machine; not the demo's, whose port is free and"
        " printed when it starts); nothing answering there stops it with one line",
    )
    simulate.add_argument(
        "--prefix",
        default="go-eCharger",
        help="mqtt: the chargers' topic prefix (default go-eCharger)",
    )
    simulate.add_argument(
        "--charger",
        action="append",
        metavar="SERIAL[:TOKEN[:MODEL]]",
        help="a simulated charger (repeatable; default 012345:demo-token); MODEL is one of"
        f" {', '.join(MODEL_NAMES)} (default {MODEL_NAMES[0]})",
    )
    simulate.add_argument(
        "--house", metavar="TOPIC", default=None,
        help="publish a grid meter for a site to --broker on TOPIC: a seeded house plus"
        " what the chargers draw",
    )  # fmt: skip
    _add_logging(simulate, suppress=True)

    demo = commands.add_parser(
        "demo", help="simulator + broker + bridge, topic stream printed",
        description="Two simulated chargers, a broker and the bridge in one process: what"
        " the bridge publishes, then what a few commands do. Its topics: goe2mqtt-demo/"
        " (states, commands) and goe2mqtt-demo-ha/ (Home Assistant discovery).",
    )  # fmt: skip
    demo.add_argument(
        "--log-level", choices=LEVELS, default="warning",
        help="the bridge's log beside the topic stream (default: warning)",
    )  # fmt: skip
    demo.add_argument(
        "--log-format", choices=("auto", "console", "json"), default="console",
        help="console lines or JSON lines (default: console)",
    )  # fmt: skip
    demo.add_argument(
        "--mqtt-host",
        default=None,
        help="use this broker instead of starting one (the demo keeps to goe2mqtt-demo/"
        " topics and removes them when it ends; not with --house)",
    )
    demo.add_argument(
        "--mqtt-port",
        type=int,
        default=None,
        help="the broker's port (with --mqtt-host: default 1883; else the port for the"
        " broker the demo starts: default a free one)",
    )
    demo.add_argument(
        "--broker",
        choices=("auto", "amqtt", "mosquitto"),
        default="auto",
        help="the broker to start without --mqtt-host (auto: Mosquitto if installed,"
        " else amqtt, an MQTT broker in Python: pip install '.[demo]' in this repository)",
    )
    demo.add_argument("--duration", type=float, default=None, help="stop after N seconds")
    demo.add_argument(
        "--house", action="store_true",
        help="a site instead: two chargers behind one 25 A fuse, a house and its meter",
    )  # fmt: skip
    return parser
