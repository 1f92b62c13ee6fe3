"""One charger's section of the config: where it is, how to reach it, how often."""

from __future__ import annotations

import urllib.parse
from typing import Literal

from pydantic import Field, SecretStr, ValidationInfo, model_validator

from goe2mqtt.config.secret_files import load_secret
from goe2mqtt.config.section import (
    DEFAULT_CLOUD_URL,
    EXAMPLE_TOKENS,
    HOST_PATTERN,
    MIN_SCAN_INTERVAL,
    NAME_PATTERN,
    SERIAL_PATTERN,
    TOPIC_PATTERN,
    Section,
)

DEFAULT_CLOUD_WEBSOCKET = "wss://app.v3.go-e.io/{serial}"


class ChargerSettings(Section):
    name: str = Field(pattern=NAME_PATTERN, max_length=64)
    # Required for the cloud; with host the charger tells it (sse) at the first poll.
    serial: str | None = Field(default=None, pattern=SERIAL_PATTERN)
    # The local HTTP API v2 on the charger itself, instead of the cloud: no token.
    host: str | None = Field(default=None, pattern=HOST_PATTERN)
    token: SecretStr | None = None
    token_file: str | None = None
    api_url: str | None = Field(default=None, pattern=r"^https?://[^\s?#]+$")
    scan_interval: float = Field(default=10.0, gt=0, le=3600)
    # While no car is connected nothing changes but the plug: poll less (null: 3x
    # scan_interval; set it equal to scan_interval to switch this off).
    idle_scan_interval: float | None = Field(default=None, gt=0, le=3600)
    timeout: float = Field(default=10.0, gt=0, le=120)
    # PV feed (cmd/pv_feed, cmd/pv_grid, ...): the latest reading is written again this
    # often, and the feed stops when no reading came for pv_feed_timeout.
    pv_feed_interval: float = Field(default=5.0, ge=1, le=60)
    pv_feed_timeout: float = Field(default=30.0, ge=2, le=3600)
    # How values travel: auto = the local websocket when a password and host are given,
    # else polling. websocket without host is the cloud's (experimental).
    transport: Literal["auto", "poll", "websocket", "mqtt"] = "auto"
    # The charger's own password (go-e app), for its websocket: a secret like the token.
    password: SecretStr | None = None
    password_file: str | None = None
    # transport: mqtt - the charger publishes {mqtt_prefix}/{serial}/{key} itself.
    # A leading slash (/go-eCharger): firmware before ~055.7, and only that form is heard.
    mqtt_prefix: str = Field(default="go-eCharger", pattern=r"^/?" + TOPIC_PATTERN[1:])
    # Polling: settings and facts (limits, names, cards, firmware) are read this often
    # and right after a write; what changes (power, car, current) every scan_interval.
    config_interval: float = Field(default=300.0, ge=1, le=86_400)

    @model_validator(mode="after")
    def _check_access(self, info: ValidationInfo) -> ChargerSettings:
        for key in ("scan_interval", "idle_scan_interval"):
            seconds = getattr(self, key)
            if seconds is not None and seconds < MIN_SCAN_INTERVAL and not self._simulated:
                raise ValueError(
                    f"{key}: at least {MIN_SCAN_INTERVAL:.0f} s: the charger refreshes its"
                    " values once a second (shorter only for a simulator on this machine: a"
                    " loopback api_url or host)"
                )
        token = load_secret(self.token, self.token_file, "token", info)
        password = load_secret(self.password, self.password_file, "password", info)
        object.__setattr__(self, "token", token)
        object.__setattr__(self, "password", password)
        if self.transport == "websocket" and password is None:
            raise ValueError(
                "password: transport websocket needs the charger's password (as set in the"
                " go-e app), or password_file"
            )
        if self.transport == "mqtt":
            return self._check_mqtt()
        if password is not None and self.transport == "poll":
            raise ValueError("password: transport poll does not use it (remove it, or use auto)")
        if self.host is not None:
            if token is not None:
                key = "token" if self.token_file is None else "token_file"
                raise ValueError(f"{key}: the local API (host) takes no token")
            return self
        if self.serial is None:
            raise ValueError("serial: required for the cloud API (or give host for the local API)")
        if token is None or not token.get_secret_value():
            raise ValueError("token: required for the cloud API (or give token_file)")
        if token.get_secret_value() in EXAMPLE_TOKENS:
            raise ValueError(
                "token: still the example's placeholder: put the charger's API key from"
                " the go-e app here (or use token_file)"
            )
        return self

    def _check_mqtt(self) -> ChargerSettings:
        """The charger's own MQTT: no HTTP, so nothing HTTP needs."""
        if self.serial is None:
            raise ValueError("serial: transport mqtt needs it (the charger's topics name it)")
        for key in ("host", "api_url", "token", "token_file", "password", "password_file"):
            if getattr(self, key) is not None:
                raise ValueError(
                    f"{key}: transport mqtt does not use it (the charger publishes to the"
                    " broker itself; no HTTP)"
                )
        return self

    @property
    def _simulated(self) -> bool:
        """A simulator on this machine (a test, the demo), where polling faster than a
        charger refreshes is harmless; never the cloud or a charger on the LAN."""
        if self.api_url is not None:
            name = urllib.parse.urlsplit(self.api_url).hostname or ""
        else:
            host = self.host or ""
            name = host[1:].split("]")[0] if host.startswith("[") else host.split(":")[0]
        return name in ("localhost", "::1") or name.startswith("127.")

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
    def channel(self) -> Literal["poll", "websocket", "mqtt"]:
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
