"""The commands: each imports what it needs when it runs (the simulator, the demo,
the session reports, the daemon), so one command does not carry another's modules."""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import os
import signal
import sqlite3
import sys
from collections.abc import Sequence

import structlog

from goe2mqtt.cli.early_stop import EarlyStop
from goe2mqtt.cli.parser import command_line
from goe2mqtt.config.loading import (
    ProbeSettings,
    load_probe_settings,
    load_report_settings,
    load_settings,
)
from goe2mqtt.config.problems import ConfigError
from goe2mqtt.config.settings import Settings
from goe2mqtt.util.logs import configure_logging

EXIT_OK = 0
EXIT_FAILURE = 1
EXIT_CONFIG = 2

log = structlog.get_logger()


def dispatch(argv: Sequence[str] | None = None, *, early: EarlyStop | None = None) -> int:
    args = command_line().parse_args(argv)
    command = args.command or "run"
    if command != "run" and early is not None:
        early.restore()  # the daemon's alone: the others stop as they always did
    if command == "simulate":
        from goe2mqtt.sim.serve import simulate

        configure_logging(args.log_level, args.log_format)
        specs = args.charger or ["012345:demo-token"]
        return simulate(
            args.listen, args.port, specs, mode=args.mode, local=args.local,
            password=args.password, hash_kind=args.hash, broker=args.broker,
            prefix=args.prefix,
            house=args.house,
        )  # fmt: skip
    if command == "healthcheck":
        if args.http:
            return _http_healthcheck(args.config, args.http, args.file, args.max_age)
        return _healthcheck(args.file, args.config, args.max_age)
    if command == "entities":
        from goe2mqtt.catalogue.table import markdown, plain

        print(markdown() if args.markdown else plain(), end="")
        return EXIT_OK
    if command == "demo":
        if args.house and (args.mqtt_host is not None or args.mqtt_port is not None):
            # It ran on its private broker all the same, and the user's saw nothing.
            print("goe2mqtt demo: --house runs on a private broker, without --mqtt-host and"
                  " --mqtt-port; for a site against your broker: goe2mqtt simulate --house"
                  " TOPIC --broker HOST:PORT", file=sys.stderr)  # fmt: skip
            return EXIT_CONFIG
        # Quiet by default: the topic stream is the demo's output.
        configure_logging(args.log_level, args.log_format)
        from goe2mqtt.sim.broker import BrokerUnavailable
        from goe2mqtt.sim.demo import DemoFailed, run_demo
        from goe2mqtt.sim.house_demo import run_house_demo

        try:
            with contextlib.suppress(KeyboardInterrupt):
                if args.house:
                    asyncio.run(run_house_demo(duration=args.duration, out=sys.stdout,
                                               broker_kind=args.broker))  # fmt: skip
                    return EXIT_OK
                asyncio.run(
                    run_demo(
                        mqtt_host=args.mqtt_host,
                        mqtt_port=args.mqtt_port,
                        duration=args.duration,
                        broker_kind=args.broker,
                        handle_signals=True,
                    )
                )
        except (BrokerUnavailable, DemoFailed) as exc:
            print(f"goe2mqtt demo: {exc}", file=sys.stderr)
            return EXIT_FAILURE
        return EXIT_OK

    settings = _load(args.config, report=command == "sessions")
    if settings is None:
        return EXIT_CONFIG
    if command == "sessions":
        return _sessions(settings, args)
    if command == "check-config":
        # Its output is its own lines: what the transports log while they are tried
        # (websocket_live, websocket_down) says the same again, as events. --log-level
        # debug shows them, for a look at what happened in between.
        quiet = None if args.log_level == "debug" else open(os.devnull, "w")  # noqa: SIM115
        configure_logging(args.log_level, args.log_format, secrets=settings.secrets(), stream=quiet)
        state_dir = _state_dir_check(settings.state_dir)
        if state_dir is EXIT_CONFIG:
            return EXIT_CONFIG
        names = ", ".join(c.name for c in settings.chargers)
        print(f"{_config_source(args.config)}: OK ({len(settings.chargers)} charger(s):"
              f" {names}{_shard_part(settings)})")  # fmt: skip
        for warning in settings.warnings:
            print(f"warning: {warning}", file=sys.stderr)
        return _check_connections(settings) if args.connect else EXIT_OK
    configure_logging(args.log_level, args.log_format, secrets=settings.secrets())
    for warning in settings.warnings:
        log.warning("config_warning", problem=warning)
    return _run(settings, early)


def _state_dir_check(state_dir: str) -> int | None:
    """state_dir as the daemon would meet it: a file on its path stopped the daemon at
    start (exit 2) after check-config said OK. Not writable by this user is a warning:
    the daemon may run as another."""
    from pathlib import Path

    from goe2mqtt.util.state_file import unusable_dir

    problem = unusable_dir(Path(state_dir))
    if problem is None:
        return None
    why, sure = problem
    where = f"state_dir: {why} (the command journal and the session ledger live there)"
    if sure:
        print(f"goe2mqtt: config error: {where}", file=sys.stderr)
        return EXIT_CONFIG
    print(f"warning: {where}; fine if the daemon runs as a user who may", file=sys.stderr)
    return None


def _config_source(path: str) -> str:
    """Where the configuration came from: the file, the environment, or both."""
    from pathlib import Path

    from goe2mqtt.config.environment import ENV_PREFIX, NOT_CONFIG

    variables = sum(1 for n in os.environ if n.startswith(ENV_PREFIX) and n not in NOT_CONFIG)
    if not Path(path).exists():
        return f"the environment ({variables} {ENV_PREFIX}* variables; no file {path})"
    return f"{path} and {variables} {ENV_PREFIX}* variables" if variables else path


def _shard_part(settings: Settings) -> str:
    """Which chargers this instance takes, with a shard: every instance is given the
    whole list, and which ones it polls was said only by bridge_started at run time."""
    if settings.shard is None:
        return ""
    shard, owned = settings.shard, settings.owned_chargers()
    whence = " (index from the host name)" if shard.from_hostname else ""
    names = ", ".join(c.name for c in owned) or "none of them"
    return f"; shard {shard.index} of {shard.count}{whence} serves {len(owned)}: {names}"


def _load(path: str, report: bool = False) -> Settings | None:
    """The settings, or None after printing every problem (``report``: for a command
    that reads only the bridge's files, which needs no secret's ${VAR})."""
    from goe2mqtt.homeassistant.bridge_device import bridge_id_collisions
    from goe2mqtt.homeassistant.discovery import name_collisions

    try:
        settings = (load_report_settings if report else load_settings)(path)
        names = [c.name for c in settings.chargers]
        shards = None if settings.shard is None else settings.shard.count
        collisions = name_collisions(names) + bridge_id_collisions(names, shards)
        if collisions:
            raise ConfigError(*collisions)
        return settings
    except ConfigError as exc:
        _config_errors(exc)
        return None


def _load_probe(path: str) -> ProbeSettings | None:
    """health_file and http: only (healthcheck needs no charger, no secret), or None
    after printing every problem."""
    try:
        return load_probe_settings(path)
    except ConfigError as exc:
        _config_errors(exc)
        return None


def _config_errors(exc: ConfigError) -> None:
    if len(exc.problems) == 1:
        print(f"goe2mqtt: config error: {exc}", file=sys.stderr)
    else:
        listed = "".join(f"\n  {problem}" for problem in exc.problems)
        print(f"goe2mqtt: {len(exc.problems)} config errors:{listed}", file=sys.stderr)


def _sessions(settings: Settings, args: argparse.Namespace) -> int:
    import time

    from goe2mqtt.bridge.ledger_out import sessions_path
    from goe2mqtt.ledger import report
    from goe2mqtt.ledger.pricing import zone
    from goe2mqtt.ledger.store import SessionStore, StoreUnusable

    default = zone(settings.tariff.timezone)
    zones = report.Zones(default, {c.name: zone(settings.tariff_for(c).timezone)
                                   for c in settings.chargers})  # fmt: skip
    path = sessions_path(settings)
    if not path.exists():
        # Absolute: a relative state_dir is where the bridge started, which need not be here.
        print(f"goe2mqtt sessions: no ledger yet ({path.absolute()}): the bridge has not"
              " run here", file=sys.stderr)  # fmt: skip
        return EXIT_FAILURE
    try:
        for day in (args.since, args.until):
            if day is not None:
                report.day_start(day, default)
    except ValueError:
        print("goe2mqtt sessions: --since and --until take YYYY-MM-DD", file=sys.stderr)
        return EXIT_CONFIG
    filters = {"charger": args.charger, "card": args.card, "since": args.since,
               "until": args.until}  # fmt: skip
    try:
        store = SessionStore(path, read_only=True)
        try:
            on_books = store.chargers()
            known = sorted({*on_books, *(c.name for c in settings.chargers)})
            if args.charger is not None and args.charger not in known:
                # An empty table would read as "no sessions": a typo must say so.
                print(f"goe2mqtt sessions: no charger {args.charger!r} in the config or on the"
                      f" books (known: {', '.join(known) or 'none'})", file=sys.stderr)  # fmt: skip
                return EXIT_CONFIG
            shown = [args.charger] if args.charger is not None else on_books
            # On stderr: CSV and JSON on stdout stay as a program reads them.
            print(f"goe2mqtt sessions: times in UTC; days and months in"
                  f" {zones.describe(shown)}", file=sys.stderr)  # fmt: skip
            if args.summary is not None:
                rows = report.zoned_summary(store, args.summary, zones, **filters)
                text = report.summary_text(rows, args.summary, args.format)
            else:
                found = report.zoned_sessions(store, zones, **filters)
                now = time.time()
                text = {"csv": report.as_csv, "json": report.as_json}.get(
                    args.format, report.sessions_table
                )(found, now)
        finally:
            store.close()
    except (StoreUnusable, sqlite3.Error) as exc:
        print(f"goe2mqtt sessions: cannot read {path}: {exc}", file=sys.stderr)
        return EXIT_FAILURE
    sys.stdout.write(text)
    return EXIT_OK


def _check_connections(settings: Settings) -> int:
    from goe2mqtt.cli.checks import check_connections

    checks = asyncio.run(check_connections(settings))
    for check in checks:
        print(check.line())
    return EXIT_OK if all(check.ok for check in checks) else EXIT_FAILURE


def _healthcheck(file: str | None, config: str, max_age: float) -> int:
    from pathlib import Path

    from goe2mqtt.bridge.health import check_health

    # Which config was read, or not: "give a config" to someone who gave one with a
    # typo in its path sent them looking for the wrong thing.
    looked = f"no config file {config}"
    if not file and os.path.exists(config):
        settings = _load_probe(config)
        if settings is None:
            return EXIT_CONFIG
        file, looked = settings.health_file, f"{config} sets no health_file"
    if not file:
        print(
            f"goe2mqtt healthcheck: no health file to read: {looked} (give --file,"
            " GOE2MQTT_HEALTH_FILE, or health_file in the config given with --config)",
            file=sys.stderr,
        )
        return EXIT_CONFIG
    # --file and $GOE2MQTT_HEALTH_FILE as the bridge reads health_file: ~ is the home
    # (a unit's Environment= and compose's environment: do not expand it)
    healthy, why = check_health(Path(file).expanduser(), max_age=max_age)
    print(f"{'healthy' if healthy else 'unhealthy'}: {why}")
    return EXIT_OK if healthy else EXIT_FAILURE


def _http_healthcheck(config: str, path: str, file: str | None, max_age: float) -> int:
    """Ask the bridge's own probe over HTTP; the probes need no token."""
    import urllib.error
    import urllib.request

    settings = _load_probe(config)
    if settings is None:
        return EXIT_CONFIG
    http = settings.http
    # The image's HEALTHCHECK asks over HTTP whatever the config says; with no probe
    # served, or none at a port the config names, the health file it sets
    # (GOE2MQTT_HEALTH_FILE) is the bridge's word.
    if not http.enabled:
        reason, detail = "http.enabled is false", "no /readyz to ask"
    elif http.port == 0:
        reason = f"http.listen is {http.listen}, port 0"
        detail = ("the HTTP check needs a fixed port (with 0 the daemon takes any free one"
                  " at each start, said only in its log's http_listening line)")  # fmt: skip
    else:
        reason = detail = ""
    if reason:
        file = file or settings.health_file
        if not file:
            print(f"unhealthy: {reason}: {detail} (healthcheck --file, or health_file in the"
                  " config, reads the health file)")  # fmt: skip
            return EXIT_FAILURE
        print(f"goe2mqtt healthcheck: {reason}: the health file instead", file=sys.stderr)
        return _healthcheck(file, config, max_age)
    host = {"0.0.0.0": "127.0.0.1", "::": "::1"}.get(http.host, http.host)
    url = f"http://{f'[{host}]' if ':' in host else host}:{http.port}/{path}"
    # The bridge's own probe, on this machine: never through a proxy that http_proxy
    # names (urllib takes it from the environment; a Docker host may set it in every
    # container, and a healthy bridge was "unhealthy": the proxy was asked).
    direct = urllib.request.build_opener(urllib.request.ProxyHandler({}))
    try:
        with direct.open(url, timeout=5) as answer:
            body, healthy = answer.read().decode(errors="replace").strip(), True
    except urllib.error.HTTPError as exc:
        body, healthy = exc.read().decode(errors="replace").strip(), False
    except OSError as exc:
        body, healthy = f"no answer from {url}: {exc}", False
    print(f"{'healthy' if healthy else 'unhealthy'}: {body}")
    return EXIT_OK if healthy else EXIT_FAILURE


def _run(settings: Settings, early: EarlyStop | None = None) -> int:
    from goe2mqtt.bridge.process import Bridge
    from goe2mqtt.bridge.startup import AnotherInstance, raise_open_file_limit
    from goe2mqtt.bridge.stopping import arm_backstop
    from goe2mqtt.commands.journal import JournalLocked, JournalUnusable
    from goe2mqtt.ledger.store import StoreUnusable
    from goe2mqtt.mqtt.client import SessionTakenOver
    from goe2mqtt.web import HttpUnavailable

    raise_open_file_limit()

    async def serve() -> None:
        bridge = Bridge(settings)
        loop = asyncio.get_running_loop()
        backstop: list[object] = []

        def stop() -> None:
            bridge.request_stop()
            if not backstop:  # the stop's deadline holds even if a task holds the loop
                backstop.append(arm_backstop(loop=loop))

        for sig in (signal.SIGTERM, signal.SIGINT):
            loop.add_signal_handler(sig, stop)
        if early is not None and early.handed_over():
            stop()  # it came during the start-up so far
        await bridge.run()

    try:
        asyncio.run(serve())
    except JournalLocked as exc:
        print(f"goe2mqtt: {exc}", file=sys.stderr)
        return EXIT_CONFIG
    except JournalUnusable as exc:
        # Exit 2: a restart loop cannot fix a folder it may not write.
        print(f"goe2mqtt: cannot open the command journal: {exc} (check state_dir)",
              file=sys.stderr)  # fmt: skip
        return EXIT_CONFIG
    except StoreUnusable as exc:
        print(f"goe2mqtt: cannot open the session ledger: {exc} (check state_dir)",
              file=sys.stderr)  # fmt: skip
        return EXIT_CONFIG
    except (AnotherInstance, SessionTakenOver, HttpUnavailable) as exc:
        # Exit 2 like a config error: restarting would only start the fight again.
        print(f"goe2mqtt: {exc}", file=sys.stderr)
        return EXIT_CONFIG
    except Exception:
        log.exception("bridge_crashed")
        return EXIT_FAILURE
    return EXIT_OK
