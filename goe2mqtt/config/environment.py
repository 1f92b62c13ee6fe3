"""Configuration from the environment: ${VAR} references and GOE2MQTT_* variables.

Text from the environment takes the type of the key it is given to (EnvText, then
typed() in the models' validator): "1883" for a port is a number, "012345" for a
serial stays text. Knows nothing of the models; problems are EnvironmentProblem,
which the config module reports like any other config error.
"""

from __future__ import annotations

import os
import re
import typing
from collections.abc import Mapping
from typing import Any

import yaml

_ENV_REF = re.compile(r"\$\{([A-Za-z_][A-Za-z0-9_]*)\}")


class EnvironmentProblem(ValueError):
    """A GOE2MQTT_* variable that names no place in the config; the message says which."""


class EnvText(str):
    """Text from the environment (${VAR} or GOE2MQTT_*): it becomes what the key it is
    given to takes. "1883" for a port is a number, "012345" for a serial stays text."""


def typed(text: EnvText, annotation: Any) -> Any:
    value = text.strip()
    kinds = typing.get_args(annotation) or (annotation,)
    if len(value) >= 2 and value[0] == value[-1] and value[0] in "'\"":
        return str(yaml.safe_load(value))  # quoted, as the README once asked for serials
    if type(None) in kinds and value in ("", "null", "~"):
        return None
    if bool in kinds and value.lower() in _BOOLEANS:
        return _BOOLEANS[value.lower()]
    for number in (int, float):
        if number in kinds:
            try:
                return number(value)
            except ValueError:
                pass
    return str(text)  # as given: the key's own validation says what is wrong


_BOOLEANS = {"true": True, "yes": True, "on": True, "false": False, "no": False, "off": False}


def unset_references(text: str) -> list[str]:
    """The ${VAR}s in the text that the environment has not got."""
    return [name for name in _ENV_REF.findall(text) if name not in os.environ]


def expand_references(node: Any, path: str, missing: list[str]) -> Any:
    """Replace ${VAR} in every string with the environment variable's value.

    A string that is one reference and nothing else takes the type of its key.
    """
    if isinstance(node, str):

        def substitute(match: re.Match[str]) -> str:
            value = os.environ.get(match.group(1))
            if value is None:
                missing.append(f"{path}: environment variable {match.group(1)} is not set")
                return ""
            return value

        expanded = _ENV_REF.sub(substitute, node)
        from_env = isinstance(node, EnvText) or _ENV_REF.fullmatch(node) is not None
        return EnvText(expanded) if from_env else expanded
    if isinstance(node, Mapping):
        return {
            key: expand_references(value, f"{path}.{key}" if path else str(key), missing)
            for key, value in node.items()
        }
    if isinstance(node, list):
        return [expand_references(v, f"{path}[{i}]", missing) for i, v in enumerate(node)]
    return node


ENV_PREFIX = "GOE2MQTT_"
# Variables that steer the program rather than hold configuration.
NOT_CONFIG = frozenset({"GOE2MQTT_CONFIG", "GOE2MQTT_CACHE"})


def apply_environment(
    raw: Any,
    environ: Mapping[str, str],
    sources: dict[str, str] | None = None,
    overridden: list[str] | None = None,
) -> Any:
    """Overlay GOE2MQTT_SECTION__KEY variables on the parsed file (env wins).

    ``sources`` receives key path -> variable name ("chargers[0].token" ->
    "GOE2MQTT_CHARGERS__0__TOKEN"), so a problem with a value can name its variable.
    ``overridden`` receives a line for each variable that changes a value the file
    gives (never the values: one may be a secret).

    ``__`` separates levels, a number indexes the charger list:
    GOE2MQTT_MQTT__HOST=broker, GOE2MQTT_CHARGERS__0__TOKEN=... . Values take the
    type of their key: 1883 for a port is a number, 012345 for a serial stays text.
    """
    document: Any = {} if raw is None else raw
    for name in sorted(environ):
        if not name.startswith(ENV_PREFIX) or name in NOT_CONFIG:
            continue
        path = [part.lower() for part in name[len(ENV_PREFIX) :].split("__")]
        key = ".".join(path)
        if not all(path):
            raise EnvironmentProblem(f"{name}: empty level in the variable name")
        value: Any = EnvText(environ[name])
        if not isinstance(document, dict):
            raise EnvironmentProblem(
                "the config file must be a YAML mapping with 'mqtt' and 'chargers'"
            )
        node: Any = document
        shown = ""  # the key path as config errors spell it
        for depth, part in enumerate(path):
            last = depth == len(path) - 1
            shown += f"[{part}]" if isinstance(node, list) else (f".{part}" if shown else part)
            if last and sources is not None:
                sources[shown] = name
            if isinstance(node, list):
                # ASCII digits: isdigit() says yes to "²" (int() refuses it) and to
                # other scripts' digits (Arabic-Indic zero, U+0660, is 0 to int()).
                if not (part.isascii() and part.isdigit()) or int(part) > len(node):
                    raise EnvironmentProblem(
                        f"{name}: {key} does not name a list entry (0..{len(node)})"
                    )
                if int(part) == len(node):
                    node.append({})
                if last:
                    node[int(part)] = value
                else:
                    node = node[int(part)]
                continue
            if not isinstance(node, dict):
                raise EnvironmentProblem(f"{name}: {key} goes below a value")
            if last:
                if overridden is not None and _differs(node.get(part), value):
                    overridden.append(f"{shown}: {name} wins over the value in the config file")
                node[part] = value
            else:
                if part not in node or node[part] is None:
                    node[part] = [] if part == "chargers" else {}
                node = node[part]
    return document


def _differs(given: Any, text: str) -> bool:
    """Whether a variable changes what the file gave (null or absent: it gave nothing)."""
    if given is None:
        return False
    if isinstance(given, bool):
        return _BOOLEANS.get(text.strip().lower()) is not given
    return str(given) != text.strip()
