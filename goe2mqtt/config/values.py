"""One value checked against its type and constraints: config/schema's leaves.

The kinds and messages are pydantic's, which config/schema replaced (issue 32: its
first model cost the daemon 5.5 MiB); config/problems words them for the user. Pure.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from typing import Any, NamedTuple

from goe2mqtt.util.numbers import finite_number, is_number

Loc = tuple[str | int, ...]
Context = dict[str, Any] | None  # what the caller hands every check (flags, warnings)
Convert = Callable[[Any, "Loc", list["Problem"], Context], Any]


class Problem(NamedTuple):
    loc: Loc  # ("chargers", 0, "serial")
    kind: str  # pydantic's error types: "missing", "int_type", "value_error", ...
    message: str


class Invalid(ValueError):
    """The problems of a mapping that did not validate, each once."""

    def __init__(self, problems: list[Problem]) -> None:
        super().__init__("\n".join(f"{p.loc}: {p.message}" for p in problems))
        self.problems = problems


class SecretStr:
    """A secret: its repr and str never show it; ``get_secret_value()`` does."""

    __slots__ = ("_secret",)

    def __init__(self, secret: str) -> None:
        self._secret = secret

    def get_secret_value(self) -> str:
        return self._secret

    def __str__(self) -> str:
        return "**********" if self._secret else ""

    def __repr__(self) -> str:
        return f"SecretStr('{self}')"

    def __eq__(self, other: object) -> bool:
        return isinstance(other, SecretStr) and other._secret == self._secret

    def __hash__(self) -> int:
        return hash(self._secret)

    def __len__(self) -> int:
        return len(self._secret)


class _Bad:
    def __repr__(self) -> str:
        return "BAD"


BAD: Any = _Bad()  # what a value that did not validate becomes (its problems recorded)


class Constraints:
    """Bounds of a number, lengths and pattern of a text: declared once per key."""

    __slots__ = ("ge", "gt", "le", "lt", "max_length", "min_length", "pattern")

    def __init__(
        self,
        bounds: tuple[float | None, float | None, float | None, float | None] = (None,) * 4,
        lengths: tuple[int | None, int | None] = (None, None),
        pattern: str | None = None,
    ) -> None:
        self.ge, self.gt, self.le, self.lt = bounds
        self.min_length, self.max_length = lengths
        self.pattern = pattern


def literal(choices: tuple[Any, ...]) -> Convert:
    shown = [repr(c) for c in choices]
    expected = " or ".join([", ".join(shown[:-1]), shown[-1]] if len(shown) > 1 else shown)

    def convert(value: Any, loc: Loc, errors: list[Problem], context: Context) -> Any:
        for choice in choices:
            if value == choice and isinstance(value, type(choice)):
                return choice
        errors.append(Problem(loc, "literal_error", f"Input should be {expected}"))
        return BAD

    return convert


# A key that takes text given a value YAML typed otherwise (true, a number, a date).
TEXT_READ_AS_OTHER = "string_read_as_other"

# type: (what it accepts, the error's kind, its message)
SCALARS: dict[Any, tuple[Callable[[Any], bool], str, str]] = {
    bool: (lambda v: isinstance(v, bool), "bool_type", "a valid boolean"),
    int: (lambda v: isinstance(v, int) and not isinstance(v, bool), "int_type", "a valid integer"),
    float: (  # an int past 2**53 would not even convert (10**400: OverflowError)
        lambda v: isinstance(v, float) or (is_number(v) and finite_number(v) is not None),
        "float_type",
        "a valid number",
    ),
    str: (lambda v: isinstance(v, str), "string_type", "a valid string"),
    SecretStr: (lambda v: isinstance(v, str | SecretStr), "string_type", "a valid string"),
}


# Text given to a key of this type: pydantic's kind and words for a string it cannot parse.
_PARSING: dict[Any, tuple[str, str]] = {
    bool: ("bool_parsing", "unable to interpret input"),
    int: ("int_parsing", "unable to parse string as an integer"),
    float: ("float_parsing", "unable to parse string as a number"),
}


def without_leading_zero(text: str) -> str:
    """030 as 30, -0_30 as -30, 00.5 as 0.5: the number a leading zero hid."""
    sign = text[0] if text[0] in "+-" else ""
    digits = text[len(sign) :].lstrip("0_")
    return sign + (digits if digits[:1].isdigit() else "0" + digits)


# Digits with a zero in front that arrive as text: YAML 1.1 reads 01883 as neither octal
# (8 is no octal digit) nor decimal, and the type's own message did not say why.
_ZERO_TEXT = {
    int: re.compile(r"[-+]?0[0-9_]+\Z"),
    float: re.compile(r"[-+]?0[0-9_]+(\.[0-9_]*)?\Z"),
}


def _leading_zero_text(value: str) -> str:
    number = without_leading_zero(value)
    if "." in value or not any(digit in value for digit in "89"):
        # Unquoted, YAML would have read it as a number (octal, or a float)
        return f"{value} is quoted text with a leading zero: write {number}, no quotes"
    return (
        f"{value} has a leading zero, which YAML reads as text here (8 and 9 are no octal"
        f" digits): write {number}"
    )


def count(n: int, noun: str) -> str:
    return f"{n} {noun}" if n == 1 else f"{n} {noun}s"


def _shown(bound: float) -> str:
    return str(int(bound)) if float(bound).is_integer() else str(bound)


def limits(spec: Constraints | None) -> Callable[[Any], tuple[str, str] | None]:
    """The constraints' check in pydantic's order; (kind, message) of the one broken."""
    if spec is None:
        return lambda value: None
    # NaN passes no comparison: `not value <= le`, as pydantic says it, refuses it.
    rules: list[tuple[str, Any, Callable[[Any, Any], bool], str]] = [
        (kind, bound, test, f"Input should be {words} {_shown(bound)}")
        for kind, bound, test, words in (
            ("less_than_equal", spec.le, lambda v, b: v <= b, "less than or equal to"),
            ("less_than", spec.lt, lambda v, b: v < b, "less than"),
            ("greater_than_equal", spec.ge, lambda v, b: v >= b, "greater than or equal to"),
            ("greater_than", spec.gt, lambda v, b: v > b, "greater than"),
        )
        if bound is not None
    ]
    least, most = spec.min_length, spec.max_length
    pattern = re.compile(spec.pattern) if spec.pattern is not None else None

    chars = "character"

    def broken(value: Any) -> tuple[str, str] | None:
        if isinstance(value, int | float):
            for kind, bound, test, message in rules:
                if not test(value, bound):
                    return kind, message
        elif isinstance(value, str):
            if least is not None and len(value) < least:
                return "string_too_short", f"String should have at least {count(least, chars)}"
            if most is not None and len(value) > most:
                return "string_too_long", f"String should have at most {count(most, chars)}"
            if pattern is not None and pattern.match(value) is None:
                return "string_pattern_mismatch", f"String should match pattern '{spec.pattern}'"
        return None

    return broken


def scalar(
    kind: Any,
    accepts: Callable[[Any], bool],
    error: str,
    words: str,
    broken: Callable[[Any], tuple[str, str] | None],
) -> Convert:
    parsing = _PARSING.get(kind)

    def convert(value: Any, loc: Loc, errors: list[Problem], context: Context) -> Any:
        if not accepts(value):
            zero_text = _ZERO_TEXT.get(kind)
            if zero_text is not None and isinstance(value, str) and zero_text.match(value):
                errors.append(Problem(loc, "leading_zero", _leading_zero_text(value)))
            elif parsing is not None and isinstance(value, str):
                # Text where a number was wanted: "2000" quoted, 1.5e3 (YAML's text)
                errors.append(Problem(loc, parsing[0], f"Input should be {words}, {parsing[1]}"))
            elif error == "string_type" and value is not None:
                # Text YAML read as something else: on, 123, 2026-06-01 (quote it).
                errors.append(Problem(loc, TEXT_READ_AS_OTHER, f"Input should be {words}"))
            else:
                errors.append(Problem(loc, error, f"Input should be {words}"))
            return BAD
        if kind is SecretStr:
            return value if isinstance(value, SecretStr) else SecretStr(str(value))
        value = kind(value)  # float(1) is 1.0; str(text from the environment) plain text
        problem = broken(value)
        if problem is not None:
            errors.append(Problem(loc, *problem))
            return BAD
        return value

    return convert
