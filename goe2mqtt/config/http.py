"""The http: section: where the operator's surface (metrics, probes, status page) listens."""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Any, ClassVar, Literal

from goe2mqtt.config.schema import field, key_check, section_check
from goe2mqtt.config.secret_files import read_secret_file
from goe2mqtt.config.section import Section
from goe2mqtt.config.values import Context, SecretStr

DEFAULT_LISTEN = "127.0.0.1:8099"
# host:port; an IPv6 address in brackets. Port 0 takes any free port (tests, several
# bridges on one machine): the log's http_listening line says which.
_LISTEN = re.compile(r"^(?P<host>[A-Za-z0-9.-]+|\[[0-9A-Fa-f:.]+\]):(?P<port>[0-9]{1,5})$")


def split_listen(listen: str) -> tuple[str, int]:
    """("host", port) of a valid listen value; an IPv6 host without its brackets."""
    match = _LISTEN.match(listen)
    if match is None:
        raise ValueError(listen)
    return match.group("host").strip("[]"), int(match.group("port"))


class HttpSettings(Section):
    _paths: ClassVar[frozenset[str]] = frozenset({"token_file"})
    enabled: bool = True
    listen: str = DEFAULT_LISTEN
    # When set, everything but /healthz and /readyz needs this token (Bearer header,
    # or the cookie the status page sets after ?token=... once).
    token_file: str | None = None
    # Per-charger series on /metrics: all, health only (online, age, polls, commands),
    # or none (a huge fleet whose Prometheus should see only the bridge's own).
    charger_metrics: Literal["all", "health", "none"] = "all"
    # Live streams (/events: an open status page each) at once; one more gets 503 with
    # Retry-After. 0: the pages are not live. Each costs a look at its page a second.
    max_streams: int = field(default=64, ge=0, le=10_000)
    _token: SecretStr | None = None

    @key_check("listen")
    @staticmethod
    def _valid_listen(value: str, earlier: Mapping[str, Any]) -> str:
        try:
            _, port = split_listen(value)
        except ValueError:
            raise ValueError(
                "must be host:port (an IPv6 address in brackets: [::1]:8099)"
            ) from None
        if port > 65535:
            raise ValueError(f"port {port} is not below 65536")
        return value

    @section_check
    def _load_token(self, context: Context) -> None:
        if self.token_file is not None:
            token = SecretStr(read_secret_file(self.token_file, "token_file", context))
            object.__setattr__(self, "_token", token)

    @property
    def host(self) -> str:
        return split_listen(self.listen)[0]

    @property
    def port(self) -> int:
        return split_listen(self.listen)[1]

    @property
    def token(self) -> SecretStr | None:
        return self._token
