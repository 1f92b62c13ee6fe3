"""The config file and the environment: read, checked for duplicate keys, parsed."""

from __future__ import annotations

import os
import re
from collections.abc import Mapping
from pathlib import Path
from typing import Any, ClassVar

import yaml

from goe2mqtt.config.environment import (
    ENV_PREFIX,
    NOT_CONFIG,
    EnvironmentProblem,
    apply_environment,
    expand_references,
    unset_references,
)
from goe2mqtt.config.http import HttpSettings
from goe2mqtt.config.problems import ConfigError, problems_of
from goe2mqtt.config.schema import field, validate
from goe2mqtt.config.section import Section
from goe2mqtt.config.settings import Settings, parse_settings
from goe2mqtt.config.values import Invalid, without_leading_zero


def node_problems(node: yaml.Node | None, path: str = "") -> list[str]:
    """What YAML would silently get wrong, each with its key: a key given twice in one
    mapping, with both lines (YAML keeps the last: a `host:` added above the example's
    optional `host:` would be overwritten), and a number written with a leading zero."""
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
            problems += node_problems(value_node, where)
    elif isinstance(node, yaml.SequenceNode):
        for index, item in enumerate(node.value):
            problems += node_problems(item, f"{path}[{index}]")
    elif _is_leading_zero(node):
        assert isinstance(node, yaml.ScalarNode)
        key = path.rsplit(".", 1)[-1]
        if key in SECRET_KEYS:  # never echoed, nor its octal
            problems.append(f'{path}: must be text: quote it in YAML ("...")')
        elif key == "serial":
            # Serials often begin with 0; "write 12345" (a number's advice) is wrong here.
            problems.append(
                f"{path}: {node.value} unquoted is a number to YAML (octal"
                f' {yaml.safe_load(node.value)}): quote the serial, serial: "{node.value}"'
            )
        else:
            problems.append(f"{path}: {_leading_zero(node.value, node.tag)}")
    return problems


_NUMBERS = frozenset({"tag:yaml.org,2002:int", "tag:yaml.org,2002:float"})
# A number with a zero before another digit: 030, -030, 0_30, 00.5 (not 0, 0.5, 0x1F).
_LEADING_ZERO = re.compile(r"[-+]?0[0-9_]")


def _is_leading_zero(node: yaml.Node | None) -> bool:
    """A number YAML read from text with a leading zero (plain: not quoted)."""
    return (
        isinstance(node, yaml.ScalarNode)
        and node.tag in _NUMBERS
        and not node.style  # libyaml's plain style is "", the pure parser's None
        and _LEADING_ZERO.match(node.value) is not None
    )


def _leading_zero(text: str, tag: str) -> str:
    """Why a number with a leading zero is refused, and what to write: YAML 1.1 reads
    030 as the octal number 24 (a price of 24 where 30 was meant, silently)."""
    decimal = without_leading_zero(text)
    if tag.endswith(":float"):
        return (
            f"{text} has a leading zero (YAML reads such a number without a dot as octal):"
            f" write {decimal}"
        )
    octal = yaml.safe_load(text)
    meant = "" if int(decimal) == octal else f", or {octal} if octal was meant"
    return (
        f"{text} has a leading zero, which YAML reads as the octal number {octal}: write"
        f' {decimal}{meant} (or "{text}" in quotes if it is text, such as a serial)'
    )


# libyaml's parser when PyYAML was built with it: a 10 000-charger config parses in a
# fraction of the pure-Python parser's time (it was ~9 % of a restart's CPU).
_Loader: type[yaml.SafeLoader] = getattr(yaml, "CSafeLoader", yaml.SafeLoader)


def _parse(text: str, path: str | Path) -> Any:
    """The document, parsed once: its nodes checked (node_problems), then built."""
    loader = _Loader(text)
    try:
        node = loader.get_single_node()
        problems = node_problems(node)
        if problems:
            raise ConfigError(*(f"{path}: {problem}" for problem in problems))
        return None if node is None else loader.construct_document(node)
    finally:
        loader.dispose()


def _yaml_problem(exc: yaml.YAMLError, text: str) -> str:
    """Where the YAML broke and what YAML says of it ("at line 2, column 1: found
    character that cannot start any token"), a tab named as such. What the pure-Python
    parser quotes of the file (a tag handle: a token written `!ab...`) is left out
    beyond a few characters: a secret never reaches an error."""
    mark = getattr(exc, "problem_mark", None)
    if mark is None:
        return ""
    where = f" at line {mark.line + 1}, column {mark.column + 1}"
    problem = getattr(exc, "problem", None)
    if not isinstance(problem, str) or not problem:
        return where
    problem = re.sub(r"'(?!<)[^']{5,}'", "'...'", problem)
    lines = text.splitlines()
    if mark.line < len(lines) and lines[mark.line][mark.column : mark.column + 1] == "\t":
        problem += " (a tab: YAML indents with spaces)"
    return f"{where}: {problem}"


class ProbeSettings(Section):
    """What `healthcheck` reads of the config: where the health file and the probes are."""

    _paths: ClassVar[frozenset[str]] = frozenset({"health_file"})
    health_file: str | None = None
    http: HttpSettings = field(default_factory=HttpSettings)


def load_probe_settings(
    path: str | Path, environ: Mapping[str, str] | None = None
) -> ProbeSettings:
    """health_file and the http: section, with GOE2MQTT_* variables over them, and
    nothing else: a monitor's shell has neither the chargers' ${VAR}s nor perhaps the
    right to read their secret files, and the probes take no token (token_file unread)."""
    document, sources, _ = _document(path, environ)
    part = {key: document[key] for key in ("health_file", "http") if key in document}
    if isinstance(part.get("http"), Mapping):
        part["http"] = {k: v for k, v in part["http"].items() if k != "token_file"}
    missing: list[str] = []
    expanded = expand_references(part, "", missing)
    if missing:
        raise ConfigError(*missing)
    try:
        return validate(ProbeSettings, expanded)
    except Invalid as exc:
        problems = problems_of(exc, ProbeSettings)
        raise ConfigError(*(_name_variable(p, sources) for p in problems)) from None


def load_settings(
    path: str | Path, environ: Mapping[str, str] | None = None, *, secrets_unread: bool = False
) -> Settings:
    """The config file, with GOE2MQTT_* variables over it; no file needed if they say it all.
    ``secrets_unread``: see load_report_settings."""
    document, sources, overridden = _document(path, environ)
    if secrets_unread:
        document = _secrets_unread(document)
    try:
        return parse_settings(document, warnings=overridden)
    except ConfigError as exc:
        raise ConfigError(*(_name_variable(p, sources) for p in exc.problems)) from None


# The keys that hold a secret itself (mqtt.password, a charger's token and password).
SECRET_KEYS = frozenset({"password", "token"})
NOT_READ = "(not read: this command reaches no charger or broker)"


def load_report_settings(path: str | Path, environ: Mapping[str, str] | None = None) -> Settings:
    """The whole config for a command that reads only the bridge's files (`goe2mqtt
    sessions`): a secret whose ${VAR} this shell has not got (the bridge's environment
    holds it) stands in as unread instead of stopping the command; every other
    ${VAR} is needed as ever."""
    return load_settings(path, environ, secrets_unread=True)


def _secrets_unread(node: Any) -> Any:
    if isinstance(node, Mapping):
        return {
            key: NOT_READ
            if key in SECRET_KEYS and isinstance(value, str) and unset_references(value)
            else _secrets_unread(value)
            for key, value in node.items()
        }
    if isinstance(node, list):
        return [_secrets_unread(item) for item in node]
    return node


def _document(
    path: str | Path, environ: Mapping[str, str] | None
) -> tuple[Any, dict[str, str], list[str]]:
    """The file parsed, GOE2MQTT_* variables over it; which key came from which
    variable, and a line for each variable that changed a value the file gives."""
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
        raw = _parse(text, path)
    except yaml.YAMLError as exc:
        raise ConfigError(f"{path}: invalid YAML{_yaml_problem(exc, text)}") from None
    sources: dict[str, str] = {}
    overridden: list[str] = []  # a variable over a file's value: an image's, unseen
    try:
        document = apply_environment(raw, environ, sources, overridden)
    except EnvironmentProblem as exc:
        raise ConfigError(str(exc)) from None
    if not isinstance(document, Mapping):
        raise ConfigError("the config file must be a YAML mapping with 'mqtt' and 'chargers'")
    return document, sources, overridden


def _name_variable(problem: str, sources: Mapping[str, str]) -> str:
    """A problem with a value that came from the environment says which variable."""
    key = problem.split(":", 1)[0]
    return f"{problem} (from {sources[key]})" if key in sources else problem
