"""One charger's section of the config: where it is, how to reach it, how often."""

from __future__ import annotations

import ipaddress
import urllib.parse
from collections.abc import Mapping
from typing import Any, ClassVar, Literal

from goe2mqtt.config.schema import field, key_check, section_check
from goe2mqtt.config.secret_files import load_secret
from goe2mqtt.config.section import (
    DEFAULT_CLOUD_URL,
    EXAMPLE_TOKENS,
    HOST_PATTERN,
    MIN_SCAN_INTERVAL,
    NAME_PATTERN,
    SERIAL_PATTERN,
    TOPIC_MAX_LENGTH,
    TOPIC_PATTERN,
    Section,
)
from goe2mqtt.config.tariff import TariffSettings
from goe2mqtt.config.values import Context, SecretStr

DEFAULT_CLOUD_WEBSOCKET = "wss://app.v3.go-e.io/{serial}"
PLACEHOLDER = (
    "still the example's placeholder: put the charger's API key from the go-e app here"
    " (or use token_file)"
)


def _loopback(api_url: str | None, host: str | None) -> bool:
    """A simulator on this machine (a test, the demo), where polling faster than a
    charger refreshes is harmless; never the cloud or a charger on the LAN."""
    if api_url is not None:
        name = urllib.parse.urlsplit(api_url).hostname or ""
    else:
        host = host or ""
        name = host[1:].split("]")[0] if host.startswith("[") else host.split(":")[0]
    return is_loopback(name)


def is_loopback(name: str) -> bool:
    """localhost, 127.0.0.0/8 or ::1: this machine (not a name that only starts with 127.)."""
    if name.lower() == "localhost":
        return True
    try:
        return ipaddress.ip_address(name).is_loopback
    except ValueError:
        return False


class ChargerSettings(Section):
    _paths: ClassVar[frozenset[str]] = frozenset({"token_file", "password_file"})
    name: str = field(pattern=NAME_PATTERN, max_length=64)
    # Required for the cloud; with host the charger tells it (sse) at the first poll.
    serial: str | None = field(default=None, pattern=SERIAL_PATTERN)
    # The local HTTP API v2 on the charger itself, instead of the cloud: no token.
    host: str | None = field(default=None, pattern=HOST_PATTERN)
    token: SecretStr | None = None
    token_file: str | None = None
    api_url: str | None = field(default=None, pattern=r"^https?://[^\s?#]+\Z")
    scan_interval: float = field(default=10.0, gt=0, le=3600)
    # While no car is connected nothing changes but the plug: poll less (null: 3x
    # scan_interval; set it equal to scan_interval to switch this off).
    idle_scan_interval: float | None = field(default=None, gt=0, le=3600)
    timeout: float = field(default=10.0, gt=0, le=120)
    # PV feed (cmd/pv_feed, cmd/pv_grid, ...): the latest reading is written again this
    # often, and the feed stops when no reading came for pv_feed_timeout.
    pv_feed_interval: float = field(default=5.0, ge=1, le=60)
    pv_feed_timeout: float = field(default=30.0, ge=2, le=3600)
    # How values travel: auto = the local websocket when a password and host are given,
    # else polling. websocket without host is the cloud's (experimental).
    transport: Literal["auto", "poll", "websocket", "mqtt"] = "auto"
    # The charger's own password (go-e app), for its websocket: a secret like the token.
    password: SecretStr | None = None
    password_file: str | None = None
    # transport: mqtt - the charger publishes {mqtt_prefix}/{serial}/{key} itself.
    # A leading slash (/go-eCharger): firmware before ~055.7, and only that form is heard.
    mqtt_prefix: str = field(
        default="go-eCharger", pattern=r"^/?" + TOPIC_PATTERN[1:], max_length=TOPIC_MAX_LENGTH
    )
    # Polling: settings and facts (limits, names, cards, firmware) are read this often
    # and right after a write; what changes (power, car, current) every scan_interval.
    config_interval: float = field(default=300.0, ge=1, le=86_400)
    # This charger's own tariff (its ledger's prices), instead of the global one.
    tariff: TariffSettings | None = None
    # An api_url of plain http beyond this machine sends the token in clear text: only
    # on purpose (a trusted LAN, a TLS proxy beside it), and then with a warning.
    allow_insecure: bool = False

    @key_check("scan_interval", "idle_scan_interval")
    @staticmethod
    def _at_least_a_second(seconds: float | None, earlier: Mapping[str, Any]) -> float | None:
        api_url, host = earlier.get("api_url"), earlier.get("host")
        if seconds is not None and seconds < MIN_SCAN_INTERVAL and not _loopback(api_url, host):
            raise ValueError(
                f"at least {MIN_SCAN_INTERVAL:.0f} s: the charger refreshes its values once"
                " a second (shorter only for a simulator on this machine: a loopback api_url"
                " or host)"
            )
        return seconds

    @key_check("token")
    @staticmethod
    def _not_the_example(token: SecretStr | None, earlier: Mapping[str, Any]) -> SecretStr | None:
        if token is not None and token.get_secret_value() in EXAMPLE_TOKENS:
            if earlier.get("host") is not None:  # no API key to look for: none is wanted
                raise ValueError(
                    "the local API (host) takes no token: remove the example's placeholder"
                )
            raise ValueError(PLACEHOLDER)
        return token

    @section_check
    def _check_access(self, context: Context) -> None:
        # Every problem at once: a newcomer fixes the file in one go, not one per run.
        # (What a single key says - an interval, the example's token - is checked with
        # the key itself, so it is said even when other keys of the file are wrong.)
        problems: list[str] = []
        token = password = None
        try:
            token = load_secret(self.token, self.token_file, "token", context)
        except ValueError as exc:
            problems.append(str(exc))
        try:
            password = load_secret(self.password, self.password_file, "password", context)
        except ValueError as exc:
            problems.append(str(exc))
        object.__setattr__(self, "token", token)
        object.__setattr__(self, "password", password)
        problems += self._access_problems(token, password, context)
        if problems:
            raise ValueError("\n".join(problems))

    @section_check
    def _idle_not_below_scan(self, context: Context) -> None:
        """An idle_scan_interval below scan_interval is not taken (a car is never polled
        less often than none): said, not overridden in silence."""
        idle = self.idle_scan_interval
        if idle is not None and idle < self.scan_interval and context is not None:
            context.setdefault("warnings", []).append(
                f"charger {self.name}: idle_scan_interval {idle:g} s is below scan_interval"
                f" {self.scan_interval:g} s: without a car it is polled every"
                f" {self.scan_interval:g} s too"
            )

    def _access_problems(
        self, token: SecretStr | None, password: SecretStr | None, context: Context
    ) -> list[str]:
        """What is missing or too much for the way this charger is reached."""
        if self.transport == "websocket" and password is None and self.password_file is None:
            return [
                "password: transport websocket needs the charger's password (as set in the"
                " go-e app), or password_file"
            ]
        if self.transport == "mqtt":
            return self._mqtt_problems()
        if password is not None and self.transport == "poll":
            return ["password: transport poll does not use it (remove it, or use auto)"]
        if self.host is not None:
            if token is not None:
                key = "token" if self.token_file is None else "token_file"
                return [f"{key}: the local API (host) takes no token"]
            return []
        problems = []
        if self.serial is None:
            problems.append("serial: required for the cloud API (or give host for the local API)")
        if self.token_file is not None and token is None:
            pass  # the file's own problem is said already
        elif token is None or not token.get_secret_value():
            problems.append("token: required for the cloud API (or give token_file)")
        elif token.get_secret_value() in EXAMPLE_TOKENS:  # from token_file
            problems.append(f"token: {PLACEHOLDER}")
        problem = self._clear_text_problem(context)
        return [*problems, problem] if problem else problems

    def _clear_text_problem(self, context: Context) -> str | None:
        """A token sent over plain http (and ws) can be read by anyone on the way."""
        if self.api_url is None or not self.api_url.lower().startswith("http://"):
            return None
        if self._simulated:
            return None  # loopback: it never leaves this machine
        problem = (
            f"api_url: {self.api_url} is plain http: the token would travel in clear text"
            " (use https"
        )
        if not self.allow_insecure:
            return f"{problem}, or set allow_insecure: true for this charger)"
        if context is None:
            return None  # validated outside a file (no warnings kept): allowed
        context.setdefault("warnings", []).append(
            f"charger {self.name}: {problem}; allowed by allow_insecure: true)"
        )
        return None

    def _mqtt_problems(self) -> list[str]:
        """The charger's own MQTT: no HTTP, so nothing HTTP needs."""
        problems = [
            f"{key}: transport mqtt does not use it (the charger publishes to the broker"
            " itself; no HTTP)"
            for key in ("host", "api_url", "token", "token_file", "password", "password_file")
            if getattr(self, key) is not None
        ]
        if self.serial is None:
            problems.insert(0, "serial: transport mqtt needs it (the charger's topics name it)")
        return problems

    @property
    def _simulated(self) -> bool:
        return _loopback(self.api_url, self.host)

    @property
    def idle_interval(self) -> float:
        if self.idle_scan_interval is not None:
            return max(self.idle_scan_interval, self.scan_interval)
        return 3 * self.scan_interval

    @property
    def shard_key(self) -> str:
        """What places the charger in a shard: stable across instances and restarts."""
        return self.serial or self.host or self.name

    @property
    def api(self) -> Literal["cloud", "local"]:
        """Where the HTTP API (and the websocket) is: the cloud or the charger itself."""
        return "local" if self.host is not None else "cloud"

    @property
    def resolved_transport(self) -> Literal["poll", "websocket", "mqtt"]:
        """The transport ``auto`` stands for."""
        if self.transport != "auto":
            return self.transport
        return "websocket" if self.password is not None and self.host is not None else "poll"

    @property
    def websocket_url(self) -> str:
        """The local websocket, or the cloud's (experimental) for a cloud charger."""
        if self.host is not None:
            return f"ws://{self.host}/ws"
        if self.api_url is not None:  # a simulated cloud on this machine
            return self.api_url.replace("http", "ws", 1).rstrip("/") + "/ws"
        return DEFAULT_CLOUD_WEBSOCKET.format(serial=self.serial)

    @property
    def base_url(self) -> str:
        if self.api_url is not None:
            url = self.api_url
        elif self.host is not None:
            url = f"http://{self.host}"
        else:
            url = DEFAULT_CLOUD_URL.format(serial=self.serial)
        return url.rstrip("/")
