"""Configuration: YAML file -> validated, immutable settings.

Every error is a ConfigError whose message starts with the key it is about
(``chargers[0].serial: ...``) and never contains a secret's value.
"""

from __future__ import annotations

import difflib
import os
import re
import socket
import ssl
import typing
import zlib
from collections.abc import Iterable, Iterator, Mapping
from pathlib import Path
from typing import Any, Literal

import yaml
from pydantic import (
    BaseModel,
    Field,
    PrivateAttr,
    SecretStr,
    ValidationError,
    ValidationInfo,
    field_validator,
    model_validator,
)
from pydantic_core import ErrorDetails

from goe2mqtt.config.charger import ChargerSettings as ChargerSettings
from goe2mqtt.config.environment import (
    ENV_PREFIX,
    NOT_CONFIG,
    EnvironmentProblem,
    apply_environment,
    expand_references,
)
from goe2mqtt.config.http import HttpSettings
from goe2mqtt.config.secret_files import check_printable, check_secret_file, load_secret
from goe2mqtt.config.section import (
    RESERVED_NAMES,
    TOPIC_PATTERN,
    Section,
)
from goe2mqtt.util.numbers import is_number as is_a_number


class ConfigError(Exception):
    """Configuration problems; each names its key and is safe to print."""

    def __init__(self, *problems: str) -> None:
        super().__init__("\n".join(problems))
        self.problems = problems


def default_state_dir() -> str:
    """systemd's StateDirectory, else the XDG state directory."""
    if os.environ.get("STATE_DIRECTORY"):
        return os.environ["STATE_DIRECTORY"].split(":")[0]
    base = os.environ.get("XDG_STATE_HOME") or os.path.join(os.path.expanduser("~"), ".local/state")
    return os.path.join(base, "goe2mqtt")


class TlsSettings(Section):
    ca_file: str | None = None  # None: the system's CA store
    certfile: str | None = None  # client certificate, for brokers that ask for one
    keyfile: str | None = None
    insecure: bool = False  # skip the host name check (self-signed test brokers only)

    @model_validator(mode="after")
    def _check_files(self, info: ValidationInfo) -> TlsSettings:
        if (self.certfile is None) != (self.keyfile is None):
            missing = "keyfile" if self.keyfile is None else "certfile"
            raise ValueError(f"{missing}: certfile and keyfile go together")
        for key in ("ca_file", "certfile"):
            path = getattr(self, key)
            if path is not None and not os.access(path, os.R_OK):
                raise ValueError(f"{key}: cannot read {path}")
        if self.keyfile is not None:
            check_secret_file(self.keyfile, "keyfile", info)
        try:
            self.context()
        except (ssl.SSLError, OSError) as exc:
            key = "ca_file" if self.certfile is None else "certfile"
            raise ValueError(f"{key}: not usable for TLS: {exc.strerror or exc}") from None
        return self

    def context(self) -> ssl.SSLContext:
        """The client-side TLS context these settings describe."""
        context = ssl.create_default_context(cafile=self.ca_file)
        if self.certfile is not None:
            context.load_cert_chain(self.certfile, self.keyfile)
        if self.insecure:
            context.check_hostname = False
        return context


class MqttSettings(Section):
    host: str = Field(min_length=1)
    port: int = Field(default=1883, ge=1, le=65535)
    username: str | None = None
    password: SecretStr | None = None
    password_file: str | None = None
    client_id: str = Field(default="goe2mqtt", min_length=1, max_length=128)
    base_topic: str = Field(default="goe2mqtt", pattern=TOPIC_PATTERN)
    discovery_prefix: str = Field(default="homeassistant", pattern=TOPIC_PATTERN)
    discovery: bool = True
    # false: only {base}/{name}/state (every value in one JSON) and availability, not one
    # topic per entity - ~110x fewer messages for a fleet back-end. Needs discovery off:
    # Home Assistant's entities read the per-entity topics.
    leaf_topics: bool = True
    keepalive: int = Field(default=60, ge=5, le=3600)
    protocol: Literal["5", "3.1.1"] = "5"
    tls: TlsSettings | None = None
    # Commands older than this are refused; with MQTT 5 it is also how long the broker
    # keeps our session (and queued commands) while we are away.
    max_command_age: int = Field(default=300, ge=1, le=86_400)

    @field_validator("protocol", mode="before")
    @classmethod
    def _protocol_as_text(cls, value: Any) -> Any:
        is_number = is_a_number(value)
        return str(value) if is_number else value

    @model_validator(mode="after")
    def _leaf_topics_for_discovery(self) -> MqttSettings:
        if self.discovery and not self.leaf_topics:
            raise ValueError(
                "leaf_topics: false needs discovery: false (Home Assistant's entities read"
                " the per-entity topics)"
            )
        return self

    @model_validator(mode="after")
    def _load_password_file(self, info: ValidationInfo) -> MqttSettings:
        password = load_secret(self.password, self.password_file, "password", info)
        object.__setattr__(self, "password", password)
        if self.username is not None:
            check_printable(self.username, "username")
        return self


class ShardSettings(Section):
    # Left out: the ordinal at the end of the host name, as a Kubernetes StatefulSet
    # names its pods (goe2mqtt-3 -> 3), so every pod can share one config.
    index: int = Field(default=-1, ge=-1)
    count: int = Field(ge=1, le=1024)
    _from_hostname: bool = PrivateAttr(default=False)

    @model_validator(mode="after")
    def _index_in_range(self) -> ShardSettings:
        if self.index == -1:
            # HOSTNAME is the pod's name in Kubernetes (and what tests set per process).
            hostname = os.environ.get("HOSTNAME") or socket.gethostname()
            object.__setattr__(self, "index", hostname_ordinal(hostname))
            self._from_hostname = True
        if self.index >= self.count:
            raise ValueError(f"index: {self.index} must be below count ({self.count})")
        return self

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
    mqtt: MqttSettings
    chargers: tuple[ChargerSettings, ...] = Field(min_length=1)
    # Secret files others may read stop start-up unless this says it is on purpose.
    allow_insecure_secrets: bool = False
    # The bridge writes its health (bridge/info plus MQTT state) here every 30 s, for
    # `goe2mqtt healthcheck` (container HEALTHCHECK, monitoring).
    health_file: str | None = None
    # Split a fleet over instances against one broker: this one polls only its share.
    shard: ShardSettings | None = None
    # The command journal lives here ({client_id}.journal): commands and results
    # that must survive a crash. Keep it on a persistent disk (a volume in a container).
    state_dir: str = Field(default_factory=default_state_dir, min_length=1)
    # The operator's HTTP surface: /metrics, /healthz, /readyz and the status page.
    http: HttpSettings = Field(default_factory=HttpSettings)
    _warnings: tuple[str, ...] = PrivateAttr(default=())

    @property
    def warnings(self) -> tuple[str, ...]:
        """What was accepted but deserves a line in the log at start-up."""
        return self._warnings

    @model_validator(mode="after")
    def _client_id_per_shard(self) -> Settings:
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
        return self

    @model_validator(mode="after")
    def _unique_chargers(self) -> Settings:
        seen_names: set[str] = set()
        seen: dict[str, set[str]] = {"serial": set(), "host": set()}  # each names one charger
        for index, charger in enumerate(self.chargers):
            if charger.name in RESERVED_NAMES:
                raise ValueError(f"chargers[{index}].name: '{charger.name}' is reserved")
            if charger.name in seen_names:
                raise ValueError(f"chargers[{index}].name: duplicate name '{charger.name}'")
            seen_names.add(charger.name)
            for key, values in seen.items():
                value = getattr(charger, key)
                if value is None:
                    continue
                if value in values:
                    raise ValueError(f"chargers[{index}].{key}: duplicate {key} {value}")
                values.add(value)
        return self

    def owned_chargers(self) -> tuple[ChargerSettings, ...]:
        if self.shard is None:
            return self.chargers
        shard = self.shard
        return tuple(c for c in self.chargers if shard.owns(c.shard_key))

    def secrets(self) -> list[str]:
        """Every secret value, so the log redactor can mask them wherever they turn up."""
        values = [
            secret.get_secret_value()
            for charger in self.chargers
            for secret in (charger.token, charger.password)
            if secret is not None
        ]
        if self.mqtt.password is not None:
            values.append(self.mqtt.password.get_secret_value())
        if self.http.token is not None:
            values.append(self.http.token.get_secret_value())
        return [v for v in values if v]


def _key_path(loc: tuple[int | str, ...]) -> str:
    text = ""
    for part in loc:
        if isinstance(part, int):
            text += f"[{part}]"
        elif part.startswith("function-") or part.startswith("model"):
            continue
        else:
            text += f".{part}" if text else part
    return text


_FRIENDLY_TYPES = {
    "missing": "required key is missing",
    "extra_forbidden": "unknown key",
}


_PATTERN_HINTS = {
    "serial": 'must be the 6-digit serial as a quoted string, e.g. "012345"',
    "name": "use only a-z, 0-9, _ and - (it becomes an MQTT topic level)",
    "base_topic": "must be an MQTT topic without wildcards (+, #) or empty levels",
    "discovery_prefix": "must be an MQTT topic without wildcards (+, #) or empty levels",
    "api_url": "must be an http:// or https:// URL without query",
    "host": "must be a host name or IP address, optionally with :port (no http://)",
    "chargers": "list at least one charger",
}


def _describe(error: Mapping[str, Any]) -> str:
    key = _key_path(tuple(error["loc"]))
    kind = error["type"]
    message = _FRIENDLY_TYPES.get(kind, str(error["msg"])).removeprefix("Value error, ")
    if kind in ("string_type", "string_pattern_mismatch", "too_short"):
        message = _PATTERN_HINTS.get(key.rsplit(".", 1)[-1], message)
    if kind == "extra_forbidden":
        loc = tuple(error["loc"])
        nearest = difflib.get_close_matches(str(loc[-1]), _keys_of_section(loc[:-1]), n=1)
        if nearest:
            message += f"; did you mean {nearest[0]}?"
    if kind == "value_error" and re.match(r"^[a-z_]+(\[\d+\])?[.:]", message):
        # A model validator names the key relative to its section.
        return f"{key}.{message}" if key else message
    return f"{key}: {message}" if key else message


def _keys_of_section(loc: tuple[Any, ...]) -> list[str]:
    """The keys the section at ``loc`` knows (for "did you mean ...?")."""
    model: type[BaseModel] = Settings
    for part in loc:
        if isinstance(part, int):
            continue
        field = model.model_fields.get(str(part))
        inner = _section_type(field.annotation) if field is not None else None
        if inner is None:
            return []
        model = inner
    return list(model.model_fields)


def _section_type(annotation: Any) -> type[BaseModel] | None:
    if isinstance(annotation, type) and issubclass(annotation, BaseModel):
        return annotation
    for argument in typing.get_args(annotation):
        found = _section_type(argument)
        if found is not None:
            return found
    return None


def _one_problem_each(errors: Iterable[ErrorDetails]) -> Iterator[ErrorDetails]:
    """A section's validator says all its problems in one error, a line each."""
    for error in errors:
        message = str(error["msg"])
        if error["type"] == "value_error" and "\n" in message:
            for line in message.removeprefix("Value error, ").split("\n"):
                yield {**error, "msg": line}
        else:
            yield error


def _has_inner(loc: tuple[Any, ...], locations: list[tuple[Any, ...]]) -> bool:
    return any(len(other) > len(loc) and other[: len(loc)] == loc for other in locations)


def parse_settings(raw: Any) -> Settings:
    """Validate an already-parsed YAML document."""
    if not isinstance(raw, Mapping):
        raise ConfigError("the config file must be a YAML mapping with 'mqtt' and 'chargers'")
    missing: list[str] = []
    expanded = expand_references(raw, "", missing)
    if missing:
        raise ConfigError(*missing)
    if isinstance(expanded.get("chargers"), list):
        expanded["chargers"] = tuple(expanded["chargers"])
    # Secret files are checked while the sections validate, before this flag itself is.
    context: dict[str, Any] = {
        "allow_insecure_secrets": expanded.get("allow_insecure_secrets") is True,
        "warnings": [],
    }
    try:
        settings = Settings.model_validate(expanded, context=context)
    except ValidationError as exc:
        errors = list(_one_problem_each(exc.errors(include_input=False)))
        inner = [tuple(e["loc"]) for e in errors]
        problems = dict.fromkeys(
            _describe(error)
            for error in errors
            # "at least one charger" only because its one charger was invalid: noise
            if not (error["type"] == "too_short" and _has_inner(tuple(error["loc"]), inner))
        )
        raise ConfigError(*problems) from None
    settings._warnings = tuple(context["warnings"])
    return settings


def duplicate_keys(node: yaml.Node | None, path: str = "") -> list[str]:
    """Keys given twice in one mapping, with both lines: YAML would silently keep the
    last (a `host:` added above the example's optional `host:` would be overwritten)."""
    problems: list[str] = []
    if isinstance(node, yaml.MappingNode):
        seen: dict[str, int] = {}
        for key_node, value_node in node.value:
            key = str(key_node.value)
            where = f"{path}.{key}" if path else key
            line = key_node.start_mark.line + 1
            if key in seen:
                problems.append(
                    f"{where}: given twice (lines {seen[key]} and {line}); YAML keeps only"
                    " the last: remove one"
                )
            seen.setdefault(key, line)
            problems += duplicate_keys(value_node, where)
    elif isinstance(node, yaml.SequenceNode):
        for index, item in enumerate(node.value):
            problems += duplicate_keys(item, f"{path}[{index}]")
    return problems


def load_settings(path: str | Path, environ: Mapping[str, str] | None = None) -> Settings:
    """The config file, with GOE2MQTT_* variables over it; no file needed if they say it all."""
    environ = os.environ if environ is None else environ
    from_env = any(n.startswith(ENV_PREFIX) and n not in NOT_CONFIG for n in environ)
    try:
        text = Path(path).read_text(encoding="utf-8")
    except FileNotFoundError:
        if not from_env:
            raise ConfigError(
                f"cannot read config file {path}: No such file or directory"
            ) from None
        text = ""
    except OSError as exc:
        raise ConfigError(f"cannot read config file {path}: {exc.strerror}") from None
    try:
        duplicates = duplicate_keys(yaml.compose(text, Loader=yaml.SafeLoader))
        if duplicates:
            raise ConfigError(*(f"{path}: {problem}" for problem in duplicates))
        raw = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f" at line {mark.line + 1}" if mark is not None else ""
        raise ConfigError(f"{path}: invalid YAML{where}") from None
    sources: dict[str, str] = {}
    try:
        document = apply_environment(raw, environ, sources)
    except EnvironmentProblem as exc:
        raise ConfigError(str(exc)) from None
    try:
        return parse_settings(document)
    except ConfigError as exc:
        raise ConfigError(*(_name_variable(p, sources) for p in exc.problems)) from None


def _name_variable(problem: str, sources: Mapping[str, str]) -> str:
    """A problem with a value that came from the environment says which variable."""
    key = problem.split(":", 1)[0]
    return f"{problem} (from {sources[key]})" if key in sources else problem
