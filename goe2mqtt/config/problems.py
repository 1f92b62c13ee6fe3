"""Validation problems (config/schema), said as a user reads them: the key first, a hint,
no secret."""

from __future__ import annotations

import re
import typing
from collections.abc import Iterable, Iterator
from typing import Any

from goe2mqtt.config.schema import Schema, key_path, key_types
from goe2mqtt.config.values import TEXT_READ_AS_OTHER, Invalid, Problem


class ConfigError(Exception):
    """Configuration problems; each names its key and is safe to print."""

    def __init__(self, *problems: str) -> None:
        super().__init__("\n".join(problems))
        self.problems = problems


def problems_of(exc: Invalid, root: type[Schema]) -> list[str]:
    """Every problem once, each naming its key (``chargers[0].serial: ...``)."""
    return list(dict.fromkeys(_describe(error, root) for error in _one_problem_each(exc.problems)))


_FRIENDLY_TYPES = {
    "missing": "required key is missing",
    "extra_forbidden": "unknown key",
    # Text where the key takes a number or true/false: quoted ("2000"), with a unit or a
    # separator (2,000), or a number YAML 1.1 reads as text (1.5e3, 1e+3: it wants a dot
    # and a signed exponent).
    "int_parsing": "must be a whole number, not text (no quotes, units or commas: 2000)",
    # 0,30 is a price in much of Europe: not "remove the comma" (030 is octal 24 to YAML).
    "float_parsing": "must be a number, not text (no quotes, units or commas: 0.30, 2000;"
    " YAML reads 1.5e3 as text: write 1500 or 1.5e+3)",
    "bool_parsing": "must be true or false, not text (no quotes)",
}


QUOTE_IT = 'must be text: quote it in YAML ("...")'
TOPIC_HINT = "must be an MQTT topic without wildcards (+, #) or empty levels"
# Said instead of the pattern itself, which only a regex reader would follow.
_PATTERN_HINTS = {
    "serial": 'must be the 6-digit serial as a quoted string, e.g. "012345"',
    "name": "use only a-z, 0-9, _ and - (it becomes an MQTT topic level)",
    "base_topic": TOPIC_HINT,
    "discovery_prefix": TOPIC_HINT,
    "meter_topic": TOPIC_HINT,
    "price_topic": TOPIC_HINT,
    "mqtt_prefix": "must be the charger's topic prefix (mtp), e.g. go-eCharger or"
    " /go-eCharger, without wildcards (+, #)",
    "currency": "must be a 3-letter ISO 4217 code in capitals, e.g. EUR",
    "api_url": "must be an http:// or https:// URL without query",
    "host": "must be a host name or IP address, optionally with :port (no http://)",
    # The broker's port is a key of its own (mqtt.port): no ":port" here.
    "mqtt.host": "must be the broker's host name or IP address",
    "chargers": "list at least one charger",
}


def _describe(error: Problem, root: type[Schema]) -> str:
    key = key_path(error.loc)
    kind = error.kind
    message = _FRIENDLY_TYPES.get(kind, error.message)
    if kind in ("string_type", TEXT_READ_AS_OTHER, "string_pattern_mismatch", "too_short"):
        message = _PATTERN_HINTS.get(key, _PATTERN_HINTS.get(key.rsplit(".", 1)[-1], message))
    if kind == "string_type" and message == error.message:
        message = QUOTE_IT
    if kind == TEXT_READ_AS_OTHER and "quote" not in message:
        # YAML reads password: 987654321 as a number, name: on as true: the user sees
        # no reason why (a pattern's hint alone said "use only a-z" of the name "on").
        message = QUOTE_IT if message == error.message else f"{QUOTE_IT}; {message}"
    if kind == "extra_forbidden":
        loc = error.loc
        import difflib  # only for a file with a problem

        nearest = difflib.get_close_matches(str(loc[-1]), _keys_of_section(loc[:-1], root), n=1)
        if nearest:
            message += f"; did you mean {nearest[0]}?"
    if kind == "value_error" and re.match(r"^[a-z_]+(\[\d+\])?[.:]", message):
        # A model validator names the key relative to its section.
        return f"{key}.{message}" if key else message
    return f"{key}: {message}" if key else message


def _keys_of_section(loc: tuple[Any, ...], root: type[Schema]) -> list[str]:
    """The keys the section at ``loc`` knows (for "did you mean ...?")."""
    section = root
    for part in loc:
        if isinstance(part, int):
            continue
        annotation = key_types(section).get(str(part))
        inner = _section_type(annotation) if annotation is not None else None
        if inner is None:
            return []
        section = inner
    return list(key_types(section))


def _section_type(annotation: Any) -> type[Schema] | None:
    if isinstance(annotation, type) and issubclass(annotation, Schema):
        return annotation
    for argument in typing.get_args(annotation):
        found = _section_type(argument)
        if found is not None:
            return found
    return None


def _one_problem_each(errors: Iterable[Problem]) -> Iterator[Problem]:
    """A section's check says all its problems in one error, a line each."""
    for error in errors:
        if error.kind == "value_error" and "\n" in error.message:
            for line in error.message.split("\n"):
                yield error._replace(message=line)
        else:
            yield error
