"""Command line: run the daemon, check a config, run the simulator or the demo."""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import os
import signal
import sys
from collections.abc import Sequence

import structlog

from goe2mqtt import __version__
from goe2mqtt.config import ConfigError, Settings, load_settings
from goe2mqtt.logs import LEVELS, configure_logging

EXIT_OK = 0
EXIT_FAILURE = 1
EXIT_CONFIG = 2

log = structlog.get_logger()


def _common_options(suppress_defaults: bool) -> argparse.ArgumentParser:
    # Sub-commands take the same options; SUPPRESS keeps a value given before the
    # sub-command from being overwritten by the sub-command's default.
    def default(value: str) -> str:
        return argparse.SUPPRESS if suppress_defaults else value

    common = argparse.ArgumentParser(add_help=False)
    common.add_argument(
        "--config",
        "-c",
        default=default(os.environ.get("GOE2MQTT_CONFIG", "config.yaml")),
        help="config file (default: $GOE2MQTT_CONFIG or ./config.yaml)",
    )
    common.add_argument("--log-level", choices=LEVELS, default=default("info"))
    common.add_argument(
        "--log-format", choices=("auto", "console", "json"), default=default("auto")
    )
    return common


def _parser() -> argparse.ArgumentParser:
    common, sub_common = _common_options(False), _common_options(True)
    parser = argparse.ArgumentParser(
        prog="goe2mqtt",
        description="Bridge go-e chargers to MQTT with Home Assistant discovery.",
        parents=[common],
    )
    parser.add_argument("--version", action="version", version=f"goe2mqtt {__version__}")
    commands = parser.add_subparsers(dest="command", metavar="COMMAND")
    commands.add_parser("run", parents=[sub_common], help="run the bridge (the default)")
    commands.add_parser("check-config", parents=[sub_common], help="validate the config and exit")
    health = commands.add_parser(
        "healthcheck", parents=[sub_common], help="exit 0 if the running bridge is healthy"
    )
    health.add_argument(
        "--file",
        default=os.environ.get("GOE2MQTT_HEALTH_FILE"),
        help="the health_file the bridge writes (default: $GOE2MQTT_HEALTH_FILE)",
    )
    health.add_argument("--max-age", type=float, default=90.0, help="seconds (default 90)")
    simulate = commands.add_parser(
        "simulate", parents=[sub_common], help="serve simulated chargers on loopback"
    )
    simulate.add_argument("--listen", default="127.0.0.1")
    simulate.add_argument("--port", type=int, default=8080)
    simulate.add_argument(
        "--charger",
        action="append",
        metavar="SERIAL[:TOKEN]",
        help="a simulated charger (repeatable; default 012345:demo-token)",
    )
    demo = commands.add_parser(
        "demo", parents=[sub_common], help="simulator + broker + bridge, topic stream printed"
    )
    demo.add_argument("--mqtt-host", default=None, help="use this broker instead of starting one")
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
        help="the broker to start without --mqtt-host (auto: amqtt if installed, else Mosquitto)",
    )
    demo.add_argument("--duration", type=float, default=None, help="stop after N seconds")
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    command = args.command or "run"
    if command == "simulate":
        configure_logging(args.log_level, args.log_format)
        return _simulate(args.listen, args.port, args.charger or ["012345:demo-token"])
    if command == "healthcheck":
        from pathlib import Path

        from goe2mqtt.health import check_health

        if not args.file:
            print("goe2mqtt healthcheck: give --file or GOE2MQTT_HEALTH_FILE", file=sys.stderr)
            return EXIT_CONFIG
        healthy, why = check_health(Path(args.file), max_age=args.max_age)
        print(f"{'healthy' if healthy else 'unhealthy'}: {why}")
        return EXIT_OK if healthy else EXIT_FAILURE
    if command == "demo":
        configure_logging("warning", "console" if args.log_format == "auto" else args.log_format)
        from goe2mqtt.broker import BrokerUnavailable
        from goe2mqtt.demo import run_demo

        try:
            with contextlib.suppress(KeyboardInterrupt):
                asyncio.run(
                    run_demo(
                        mqtt_host=args.mqtt_host,
                        mqtt_port=args.mqtt_port,
                        duration=args.duration,
                        broker_kind=args.broker,
                        handle_signals=True,
                    )
                )
        except BrokerUnavailable as exc:
            print(f"goe2mqtt demo: {exc}", file=sys.stderr)
            return EXIT_FAILURE
        return EXIT_OK

    try:
        settings = load_settings(args.config)
    except ConfigError as exc:
        print(f"goe2mqtt: config error: {exc}", file=sys.stderr)
        return EXIT_CONFIG
    if command == "check-config":
        names = ", ".join(c.name for c in settings.chargers)
        print(f"{args.config}: OK ({len(settings.chargers)} charger(s): {names})")
        return EXIT_OK
    configure_logging(args.log_level, args.log_format, secrets=settings.secrets())
    for warning in settings.warnings:
        log.warning("config_warning", problem=warning)
    return _run(settings)


def _run(settings: Settings) -> int:
    from goe2mqtt.bridge import AnotherInstance, Bridge, raise_open_file_limit
    from goe2mqtt.journal import JournalLocked
    from goe2mqtt.mqtt import SessionTakenOver

    raise_open_file_limit()

    async def serve() -> None:
        bridge = Bridge(settings)
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGTERM, signal.SIGINT):
            loop.add_signal_handler(sig, bridge.request_stop)
        await bridge.run()

    try:
        asyncio.run(serve())
    except JournalLocked as exc:
        print(f"goe2mqtt: {exc}: is this instance already running?", file=sys.stderr)
        return EXIT_CONFIG
    except (AnotherInstance, SessionTakenOver) as exc:
        # Exit 2 like a config error: restarting would only start the fight again.
        print(f"goe2mqtt: {exc}", file=sys.stderr)
        return EXIT_CONFIG
    except Exception:
        log.exception("bridge_crashed")
        return EXIT_FAILURE
    return EXIT_OK


def _simulate(host: str, port: int, specs: Sequence[str]) -> int:
    from goe2mqtt.simulator import SimulatedCharger, Simulator

    chargers = []
    for spec in specs:
        serial, _, token = spec.partition(":")
        chargers.append(SimulatedCharger(serial, token or None))
    simulator = Simulator(chargers)

    async def serve() -> None:
        await simulator.start(host, port)
        for charger in chargers:
            print(
                f"charger {charger.serial}: api_url {simulator.url_for(charger.serial)}", flush=True
            )
        stop = asyncio.Event()
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGTERM, signal.SIGINT):
            loop.add_signal_handler(sig, stop.set)
        await stop.wait()
        await simulator.stop()

    asyncio.run(serve())
    return EXIT_OK
