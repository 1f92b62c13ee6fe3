"""The settings' sections (mqtt, shard, the whole file) and their validation.

Every error is a ConfigError whose message starts with the key it is about
(``chargers[0].serial: ...``) and never contains a secret's value (config/problems
words them; config/loading reads the file and the environment).
"""

from __future__ import annotations

import os
import re
import socket
import ssl
import zlib
from collections.abc import Iterable, Mapping
from typing import Any, ClassVar, Literal

from goe2mqtt.config.charger import ChargerSettings as ChargerSettings
from goe2mqtt.config.environment import expand_references
from goe2mqtt.config.http import HttpSettings
from goe2mqtt.config.problems import ConfigError, problems_of
from goe2mqtt.config.schema import field, key_check, section_check, validate
from goe2mqtt.config.secret_files import (
    check_printable,
    check_secret_file,
    load_secret,
)
from goe2mqtt.config.section import (
    RESERVED_NAMES,
    TOPIC_MAX_LENGTH,
    TOPIC_PATTERN,
    Section,
)
from goe2mqtt.config.site import SiteSettings as SiteSettings
from goe2mqtt.config.tariff import SessionsSettings, TariffSettings
from goe2mqtt.config.values import Context, Invalid, SecretStr
from goe2mqtt.util.numbers import is_number as is_a_number
from goe2mqtt.util.text import slug


def default_state_dir() -> str:
    """systemd's StateDirectory, else the XDG state directory."""
    if os.environ.get("STATE_DIRECTORY"):
        return os.environ["STATE_DIRECTORY"].split(":")[0]
    base = os.environ.get("XDG_STATE_HOME") or os.path.join(os.path.expanduser("~"), ".local/state")
    return os.path.join(base, "goe2mqtt")


class TlsSettings(Section):
    _paths: ClassVar[frozenset[str]] = frozenset({"ca_file", "certfile", "keyfile"})
    ca_file: str | None = None  # None: the system's CA store
    certfile: str | None = None  # client certificate, for brokers that ask for one
    keyfile: str | None = None
    insecure: bool = False  # skip the host name check (self-signed test brokers only)

    @section_check
    def _check_files(self, context: Context) -> None:
        if (self.certfile is None) != (self.keyfile is None):
            missing = "keyfile" if self.keyfile is None else "certfile"
            raise ValueError(f"{missing}: certfile and keyfile go together")
        for key in ("ca_file", "certfile"):
            path = getattr(self, key)
            if path is not None and not os.access(path, os.R_OK):
                raise ValueError(f"{key}: cannot read {path}")
        if self.keyfile is not None:
            check_secret_file(self.keyfile, "keyfile", context)
        try:
            self.context()
        except (ssl.SSLError, OSError) as exc:
            key = "ca_file" if self.certfile is None else "certfile"
            raise ValueError(f"{key}: not usable for TLS: {exc.strerror or exc}") from None

    def context(self) -> ssl.SSLContext:
        """The client-side TLS context these settings describe."""
        context = ssl.create_default_context(cafile=self.ca_file)
        if self.certfile is not None:
            context.load_cert_chain(self.certfile, self.keyfile)
        if self.insecure:
            context.check_hostname = False
        return context


MIN_BULK_RATE = 10.0  # mqtt.bulk_rate, max_rate: below it (but 0) a fleet's start-up took hours


class MqttSettings(Section):
    _paths: ClassVar[frozenset[str]] = frozenset({"password_file"})
    host: str = field(min_length=1)
    port: int = field(default=1883, ge=1, le=65535)
    username: str | None = None
    password: SecretStr | None = None
    password_file: str | None = None
    client_id: str = field(default="goe2mqtt", min_length=1, max_length=128)
    base_topic: str = field(default="goe2mqtt", pattern=TOPIC_PATTERN, max_length=TOPIC_MAX_LENGTH)
    discovery_prefix: str = field(
        default="homeassistant", pattern=TOPIC_PATTERN, max_length=TOPIC_MAX_LENGTH
    )
    discovery: bool = True
    # false: only {base}/{name}/state (every value in one JSON) and availability, not one
    # topic per entity - ~110x fewer messages for a fleet back-end. Needs discovery off:
    # Home Assistant's entities read the per-entity topics.
    leaf_topics: bool = True
    keepalive: int = field(default=60, ge=5, le=3600)
    protocol: Literal["5", "3.1.1"] = "5"
    tls: TlsSettings | None = None
    # Commands older than this are refused; with MQTT 5 it is also how long the broker
    # keeps our session (and queued commands) while we are away.
    max_command_age: int = field(default=300, ge=1, le=86_400)
    # Discovery configs and re-sends (Home Assistant's birth, a reconnect) a second at
    # most, after a first 500; a change never waits for a re-send. 0: no limit. A broker drops
    # what a slow subscriber has not read past its queue (mqtt/pace.py's BULK_RATE).
    bulk_rate: float = field(default=2000.0, ge=0, le=1_000_000)
    # Every state, config and re-send a second at most, after a first 500: a burst of
    # changes (a fleet's first states, chargers back after an outage) at the pace a
    # subscriber reads, which the broker's queue does not outlast. 0: no limit.
    max_rate: float = field(default=10_000.0, ge=0, le=1_000_000)

    @key_check("bulk_rate", "max_rate")
    @staticmethod
    def _rate_off_or_real(value: float, earlier: Mapping[str, Any]) -> float:
        # A family goes whole and the pace makes up for it after: at 0.5 a second one
        # charger's 132 configs held every later charger back for over four minutes.
        if 0 < value < MIN_BULK_RATE:
            raise ValueError(
                f"must be 0 (no limit) or at least {MIN_BULK_RATE:.0f} messages a second"
            )
        return value

    @key_check("host")
    @staticmethod
    def _host_alone(value: str, earlier: Mapping[str, Any]) -> str:
        # Either never connects (a DNS failure at every retry): say so before the start.
        if "/" in value:
            raise ValueError(
                "must be the broker's host name or IP address, not a URL"
                " (mqtt://broker.lan:1883 is host: broker.lan and port: 1883)"
            )
        if value.startswith("[") or re.fullmatch(r"[^:]*:[0-9]*", value):
            raise ValueError(
                "must be the broker's host name or IP address alone: the port goes in"
                " mqtt.port (an IPv6 address without brackets: ::1)"
            )
        return value

    @key_check("protocol", before=True)
    @staticmethod
    def _protocol_as_text(value: Any) -> Any:
        is_number = is_a_number(value)
        return str(value) if is_number else value

    @section_check
    def _leaf_topics_for_discovery(self, context: Context) -> None:
        if self.discovery and not self.leaf_topics:
            raise ValueError(
                "leaf_topics: false needs discovery: false (Home Assistant's entities read"
                " the per-entity topics)"
            )

    @section_check
    def _load_password_file(self, context: Context) -> None:
        password = load_secret(self.password, self.password_file, "password", context)
        object.__setattr__(self, "password", password)
        if self.username is not None:
            check_printable(self.username, "username")


class ShardSettings(Section):
    # Left out: the ordinal at the end of the host name, as a Kubernetes StatefulSet
    # names its pods (goe2mqtt-3 -> 3), so every pod can share one config.
    index: int = field(default=-1, ge=-1)
    count: int = field(ge=1, le=1024)
    _from_hostname: bool = False

    @section_check
    def _index_in_range(self, context: Context) -> None:
        if self.index == -1:
            # HOSTNAME is the pod's name in Kubernetes (and what tests set per process).
            hostname = os.environ.get("HOSTNAME") or socket.gethostname()
            object.__setattr__(self, "index", hostname_ordinal(hostname))
            object.__setattr__(self, "_from_hostname", True)
        if self.index >= self.count:
            raise ValueError(f"index: {self.index} must be below count ({self.count})")

    @property
    def from_hostname(self) -> bool:
        return self._from_hostname

    def owns(self, key: str) -> bool:
        # crc32, not hash(): the same answer in every process, on every machine.
        return zlib.crc32(key.encode()) % self.count == self.index


def hostname_ordinal(hostname: str) -> int:
    """The N of a StatefulSet pod's name (goe2mqtt-N)."""
    match = re.search(r"-(\d+)$", hostname.split(".", 1)[0])
    if match is None:
        raise ValueError(
            f"index: not given, and the host name {hostname!r} does not end in -N (a"
            " StatefulSet pod's ordinal): give shard.index"
        )
    return int(match.group(1))


SHARD_PLACEHOLDER = "{shard}"


class Settings(Section):
    _paths: ClassVar[frozenset[str]] = frozenset({"state_dir", "health_file"})
    mqtt: MqttSettings
    chargers: tuple[ChargerSettings, ...] = field(min_length=1)
    # Secret files others may read stop start-up unless this says it is on purpose.
    allow_insecure_secrets: bool = False
    # The bridge writes its health (bridge/info plus MQTT state) here every 30 s, for
    # `goe2mqtt healthcheck` (container HEALTHCHECK, monitoring).
    health_file: str | None = None
    # Split a fleet over instances against one broker: this one polls only its share.
    shard: ShardSettings | None = None
    # The command journal lives here ({client_id}.journal): commands and results
    # that must survive a crash. Keep it on a persistent disk (a volume in a container).
    state_dir: str = field(default_factory=default_state_dir, min_length=1)
    # The operator's HTTP surface: /metrics, /healthz, /readyz and the status page.
    http: HttpSettings = field(default_factory=HttpSettings)
    # What energy costs (the session ledger); a charger's own tariff replaces it.
    tariff: TariffSettings = field(default_factory=TariffSettings)
    sessions: SessionsSettings = field(default_factory=SessionsSettings)
    # One fuse (or import cap) shared by several chargers: the site controller.
    sites: tuple[SiteSettings, ...] = ()
    _warnings: tuple[str, ...] = ()

    @property
    def warnings(self) -> tuple[str, ...]:
        """What was accepted but deserves a line in the log at start-up."""
        return self._warnings

    @section_check
    def _client_id_per_shard(self, context: Context) -> None:
        # One config for every pod: "{shard}" in client_id gives each its own session.
        client_id = self.mqtt.client_id
        derived = self.shard is not None and self.shard.from_hostname
        if derived and SHARD_PLACEHOLDER not in client_id:
            raise ValueError(
                "mqtt.client_id: with shard.index taken from the host name, put {shard} in"
                " client_id (e.g. goe2mqtt-{shard}) so each pod has its own session"
            )
        if SHARD_PLACEHOLDER in client_id:
            if self.shard is None:
                raise ValueError("mqtt.client_id: {shard} needs a shard section")
            object.__setattr__(
                self.mqtt, "client_id", client_id.replace(SHARD_PLACEHOLDER, str(self.shard.index))
            )

    @section_check
    def _unique_chargers(self, context: Context) -> None:
        # Every duplicate at once: a fleet's list copied and edited has several.
        problems: list[str] = []
        seen_names: set[str] = set()
        seen: dict[str, set[str]] = {"serial": set(), "host": set()}  # each names one charger
        for index, charger in enumerate(self.chargers):
            if charger.name in RESERVED_NAMES:
                problems.append(f"chargers[{index}].name: '{charger.name}' is reserved")
            elif charger.name in seen_names:
                problems.append(f"chargers[{index}].name: duplicate name '{charger.name}'")
            seen_names.add(charger.name)
            for key, values in seen.items():
                value = getattr(charger, key)
                if value is None:
                    continue
                if value in values:
                    problems.append(f"chargers[{index}].{key}: duplicate {key} {value}")
                values.add(value)
        if problems:
            raise ValueError("\n".join(problems))

    def tariff_for(self, charger: ChargerSettings) -> TariffSettings:
        return charger.tariff if charger.tariff is not None else self.tariff

    @section_check
    def _sites_name_chargers(self, context: Context) -> None:
        problems = site_problems(self.sites, {c.name for c in self.chargers})
        problems.extend(meter_loops(self.sites, self.mqtt.base_topic))
        for index, charger in enumerate(self.chargers):
            ids = slug(charger.name)  # Home Assistant's: site-house is site_house
            if self.sites and (ids == "site" or ids.startswith("site_")):
                # {base}/site/... holds the sites' topics, site_{site}_{key} their
                # Home Assistant object ids (beside the chargers' {charger}_{key})
                # site-house: the name the user wrote begins no 'site_': say why it is
                read = (
                    ""
                    if ids == charger.name
                    else f"; Home Assistant reads '{charger.name}' as {ids}"
                )
                problems.append(
                    f"chargers[{index}].name: 'site' and names beginning 'site_' are"
                    " reserved while sites are set (the sites' topics and Home Assistant ids"
                    f"{read}): rename the charger"
                )
        if self.sites and self.shard is not None:
            problems.append(
                "sites: a site needs every charger of it in one instance: not with shard"
            )
        if problems:
            raise ValueError("\n".join(problems))

    def owned_chargers(self) -> tuple[ChargerSettings, ...]:
        if self.shard is None:
            return self.chargers
        shard = self.shard
        return tuple(c for c in self.chargers if shard.owns(c.shard_key))

    def secrets(self) -> list[str]:
        """Every secret value, so the log redactor can mask them wherever they turn up."""
        return [value for _, value in self._named_secrets()]

    def _named_secrets(self) -> list[tuple[str, str]]:
        """Every secret value given, with its key."""
        named = [
            (f"chargers[{index}].{key}", secret)
            for index, charger in enumerate(self.chargers)
            for key, secret in (("token", charger.token), ("password", charger.password))
        ]
        named += [("mqtt.password", self.mqtt.password), ("http.token", self.http.token)]
        return [(key, s.get_secret_value()) for key, s in named if s and s.get_secret_value()]

    @section_check
    def _short_secrets(self, context: Context) -> None:
        # The log masks a secret under util/logs.ANYWHERE characters only where it stands
        # as a word: one as short as a word ("online") hides that word in every line.
        short = [key for key, value in self._named_secrets() if len(value) < SHORT_SECRET]
        if short and context is not None:
            shown = ", ".join(short[:5]) + (f" and {len(short) - 5} more" if len(short) > 5 else "")
            context.setdefault("warnings", []).append(
                f"{shown}: shorter than {SHORT_SECRET} characters - easy to guess, and the"
                " log masks every word equal to it wherever that word stands alone (a"
                " common word vanishes from every line): a longer one keeps the logs readable"
            )


SHORT_SECRET = 8  # a secret shorter than this is warned of at start-up


def site_problems(sites: tuple[SiteSettings, ...], chargers: set[str]) -> list[str]:
    """What only the whole file can tell of its sites: names that must be unique and
    chargers that must exist, each in one site at most."""
    problems: list[str] = []
    site_names: set[str] = set()
    managed: dict[str, str] = {}  # charger -> its site
    for index, site in enumerate(sites):
        if site.name in site_names:
            problems.append(f"sites[{index}].name: duplicate site name '{site.name}'")
        site_names.add(site.name)
        for number, charger in enumerate(site.chargers):
            key = f"sites[{index}].chargers[{number}].name"
            if charger.name not in chargers:
                problems.append(f"{key}: unknown charger '{charger.name}' (not in chargers:)")
            elif charger.name in managed:
                where = managed[charger.name]
                problems.append(
                    f"{key}: charger '{charger.name}' is already in site '{where}'"
                    if where != site.name
                    else f"{key}: charger '{charger.name}' is listed twice"
                )
            else:
                managed[charger.name] = site.name
    return problems


def meter_loops(sites: tuple[SiteSettings, ...], base: str) -> list[str]:
    """A meter_topic under the bridge's own base topic: the site would read what the
    bridge publishes there (its own state, a charger's values) as the grid meter."""
    return [
        f"sites[{index}].meter_topic: {site.meter_topic!r} lies under the bridge's own"
        f" base_topic {base!r}: the site would read the bridge's own publishes as the"
        " meter; give the topic your meter publishes to, outside it"
        for index, site in enumerate(sites)
        if site.meter_topic == base or site.meter_topic.startswith(f"{base}/")
    ]


def parse_settings(raw: Any, *, warnings: Iterable[str] = ()) -> Settings:
    """Validate an already-parsed YAML document (``warnings``: the loader's, said first)."""
    if not isinstance(raw, Mapping):
        raise ConfigError("the config file must be a YAML mapping with 'mqtt' and 'chargers'")
    missing: list[str] = []
    expanded = expand_references(raw, "", missing)
    if missing:
        raise ConfigError(*missing)
    # Secret files are checked while the sections validate, before this flag itself is.
    context: dict[str, Any] = {
        "allow_insecure_secrets": expanded.get("allow_insecure_secrets") is True,
        "warnings": [],
    }
    try:
        settings = validate(Settings, expanded, context)
    except Invalid as exc:
        raise ConfigError(*problems_of(exc, Settings)) from None
    object.__setattr__(settings, "_warnings", (*warnings, *context["warnings"]))
    return settings
