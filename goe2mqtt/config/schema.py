"""A small declarative validation of mappings into frozen, typed sections.

A section is a class of annotated keys (``port: int = field(default=1883, ge=1)``):
the annotation says the type, ``field`` the default and the constraints. Types are
strict - YAML already gives real ones, so "1883" for a port is a mistake worth
reporting - but an int is a float; a bool is no int. Every problem of a mapping is
collected as a Problem (key path, kind, message), not only the first; a section's own
checks (``@section_check``) run once all its keys are valid, a key's (``@key_check``)
once its own value is. One value's type and constraints are checked in config/values;
config/problems words the problems for the user. Pure: no I/O.
"""

from __future__ import annotations

import inspect
import types
import typing
from collections.abc import Callable, Mapping
from typing import Any, ClassVar, Literal, TypeVar, dataclass_transform

from goe2mqtt.config.values import (
    BAD,
    SCALARS,
    Constraints,
    Context,
    Convert,
    Invalid,
    Loc,
    Problem,
    SecretStr,
    count,
    limits,
    literal,
    scalar,
)

S = TypeVar("S", bound="Schema")
F = TypeVar("F", bound=Callable[..., Any])


class FrozenError(AttributeError):
    """A section is immutable once validated."""


class _Missing:
    def __repr__(self) -> str:
        return "MISSING"


MISSING: Any = _Missing()


class Field(Constraints):
    """A key's default and constraints, declared once (``field(...)``)."""

    __slots__ = ("alias", "annotation", "convert", "default", "factory", "name")

    def __init__(
        self,
        default: Any,
        factory: Callable[[], Any] | None,
        alias: str | None = None,
        **rules: Any,
    ) -> None:
        super().__init__(**rules)
        self.default, self.factory, self.name, self.alias = default, factory, "", alias
        self.annotation: Any = None  # the type, once resolved
        self.convert: Convert = _unresolved

    @property
    def key(self) -> str:
        """The key as the mapping spells it (``from`` for a field ``start``)."""
        return self.alias or self.name


def field(
    *,
    default: Any = MISSING,
    default_factory: Callable[[], Any] | None = None,
    alias: str | None = None,
    ge: float | None = None,
    gt: float | None = None,
    le: float | None = None,
    lt: float | None = None,
    min_length: int | None = None,
    max_length: int | None = None,
    pattern: str | None = None,
) -> Any:
    """A key with a default (or none: required) and constraints on its value."""
    lengths = (min_length, max_length)
    return Field(
        default, default_factory, alias, bounds=(ge, gt, le, lt), lengths=lengths, pattern=pattern
    )


def key_check(*keys: str, before: bool = False) -> Callable[[F], F]:
    """Marks a static or class method as a check of these keys: ``(value, earlier) ->
    value`` once the value has its type (``earlier``: the keys above it that are valid),
    or with ``before``, ``(value) -> value`` on what was given. ValueError: a problem."""

    def mark(function: F) -> F:
        function.__schema_keys__ = (keys, before)  # type: ignore[attr-defined]
        return function

    return mark


def section_check(function: F) -> F:
    """Marks ``(self, context) -> None`` as a check of the whole section, once all its
    keys are valid; its ValueError is the problem (a line per problem, each beginning
    with its key). The checks run in the order they are defined; the first problem ends."""
    function.__schema_section__ = True  # type: ignore[attr-defined]
    return function


@dataclass_transform(kw_only_default=True, frozen_default=True, field_specifiers=(field,))
class Schema:
    """The base of a section: annotated keys, validated on construction, then frozen."""

    __schema_fields__: ClassVar[tuple[Field, ...] | None] = None
    __schema_declared__: ClassVar[dict[str, Field]] = {}
    __schema_key_checks__: ClassVar[dict[str, tuple[list[str], list[str]]]] = {}
    __schema_section_checks__: ClassVar[tuple[str, ...]] = ()

    def __init_subclass__(cls, **kwargs: Any) -> None:
        super().__init_subclass__(**kwargs)
        declared = dict(cls.__schema_declared__)
        for name in inspect.get_annotations(cls):
            if name.startswith("_"):
                continue  # private: set by a check, never given
            default = cls.__dict__.get(name, MISSING)
            spec = default if isinstance(default, Field) else Field(default, None)
            spec.name = name
            declared[name] = spec
            if isinstance(default, Field):
                delattr(cls, name)
        key_checks = {k: (list(b), list(a)) for k, (b, a) in cls.__schema_key_checks__.items()}
        section_checks = list(cls.__schema_section_checks__)
        for attribute, value in cls.__dict__.items():
            marked = getattr(value, "__func__", value)  # a static or class method's
            if getattr(marked, "__schema_section__", False):
                section_checks.append(attribute)
            mark = getattr(value, "__schema_keys__", None) or getattr(
                marked, "__schema_keys__", None
            )
            keys, before = typing.cast(tuple[tuple[str, ...], bool], mark or ((), False))
            for key in keys:
                key_checks.setdefault(key, ([], []))[0 if before else 1].append(attribute)
        cls.__schema_declared__ = declared
        cls.__schema_key_checks__ = key_checks
        cls.__schema_section_checks__ = tuple(section_checks)
        cls.__schema_fields__ = None  # resolved at the first validation

    def __init__(self, **data: Any) -> None:
        errors: list[Problem] = []
        built = _section(type(self), data, (), errors, None)
        if errors:
            raise Invalid(errors)
        self.__dict__.update(built.__dict__)

    @classmethod
    def _prepare(cls, data: dict[str, Any]) -> dict[str, Any]:
        """The given mapping before its keys are validated (a subclass may convert)."""
        return data

    def __setattr__(self, name: str, value: Any) -> None:
        raise FrozenError(f"{type(self).__name__} is frozen: {name} cannot be set")

    def __delattr__(self, name: str) -> None:
        raise FrozenError(f"{type(self).__name__} is frozen: {name} cannot be deleted")

    def __repr__(self) -> str:
        shown = ", ".join(f"{f.name}={getattr(self, f.name)!r}" for f in _fields(type(self)))
        return f"{type(self).__name__}({shown})"

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, Schema) or type(other) is not type(self):
            return False
        return _values(self) == _values(other)

    def __hash__(self) -> int:
        return hash(_values(self))


def _values(section: Schema) -> tuple[Any, ...]:
    return tuple(getattr(section, f.name) for f in _fields(type(section)))


def _fields(cls: type[Schema]) -> tuple[Field, ...]:
    """The keys in order, each with its converter (annotations resolved once)."""
    resolved = cls.__dict__.get("__schema_fields__")
    if resolved is None:
        hints = typing.get_type_hints(cls)
        resolved = tuple(cls.__schema_declared__.values())
        for spec in resolved:
            spec.annotation = hints[spec.name]
            spec.convert = _converter(spec.annotation, spec)
        cls.__schema_fields__ = resolved
    return resolved


def field_names(cls: type[Schema]) -> tuple[str, ...]:
    """The keys a section knows, in order (no type is resolved for it)."""
    return tuple(cls.__schema_declared__)


def key_types(cls: type[Schema]) -> dict[str, Any]:
    """Each key (as the mapping spells it) and its type."""
    return {spec.key: spec.annotation for spec in _fields(cls)}


def validate(cls: type[S], data: Any, context: Context = None) -> S:
    """``data`` as a ``cls``; Invalid with every problem if it is not one."""
    errors: list[Problem] = []
    built = _section(cls, data, (), errors, context)
    if errors:
        raise Invalid(errors)
    return typing.cast(S, built)


def given(section: Schema) -> frozenset[str]:
    """The keys the mapping gave (the others took their defaults)."""
    return typing.cast(frozenset[str], section.__dict__["__given__"])


def replace(section: S, **changes: Any) -> S:
    """A copy with these keys changed, not validated again (private values kept)."""
    copy = object.__new__(type(section))
    copy.__dict__.update(section.__dict__, **changes)
    copy.__dict__["__given__"] = given(section) | changes.keys()
    return copy


def dump(section: Schema, *, exclude_none: bool = False) -> dict[str, Any]:
    """The section as plain data (lists, texts, numbers) by its keys; secrets masked."""

    def plain(value: Any) -> Any:
        if isinstance(value, Schema):
            return dump(value, exclude_none=exclude_none)
        if isinstance(value, tuple | list):
            return [plain(item) for item in value]
        if isinstance(value, dict):
            return {key: plain(item) for key, item in value.items()}
        return str(value) if isinstance(value, SecretStr) else value

    values = ((f.key, getattr(section, f.name)) for f in _fields(type(section)))
    return {key: plain(v) for key, v in values if not (exclude_none and v is None)}


def _section(
    cls: type[Schema], data: Any, loc: Loc, errors: list[Problem], context: Context
) -> Any:
    if isinstance(data, cls):
        return data
    if not isinstance(data, Mapping):
        message = f"Input should be a valid dictionary or instance of {cls.__name__}"
        errors.append(Problem(loc, "model_type", message))
        return BAD
    data = cls._prepare(dict(data))
    first = len(errors)
    values: dict[str, Any] = {}
    for spec in _fields(cls):
        if spec.key not in data:
            if spec.factory is not None:
                values[spec.name] = spec.factory()
            elif spec.default is not MISSING:
                values[spec.name] = spec.default
            else:
                errors.append(Problem((*loc, spec.key), "missing", "Field required"))
            continue
        value = _checked(cls, spec, data[spec.key], values, (*loc, spec.key), errors, context)
        if value is not BAD:
            values[spec.name] = value
    known = {spec.key for spec in _fields(cls)}
    for key in data:
        if key not in known:
            errors.append(Problem((*loc, key), "extra_forbidden", "Extra inputs are not permitted"))
    if len(errors) > first:
        return BAD
    section = object.__new__(cls)
    section.__dict__.update(values, __given__=frozenset(k for k in values if k in data))
    outer = None if context is None else context.get("at")
    if context is not None:
        context["at"] = key_path(loc)  # a check's warnings name their key in full
    try:
        for name in cls.__schema_section_checks__:
            try:
                getattr(section, name)(context)
            except ValueError as exc:
                errors.append(Problem(loc, "value_error", str(exc)))
                return BAD
    finally:
        if context is not None:
            context["at"] = outer
    return section


def key_path(loc: Loc) -> str:
    """A key path as a user reads it: ``chargers[0].token_file``."""
    text = ""
    for part in loc:
        text += f"[{part}]" if isinstance(part, int) else f".{part}" if text else str(part)
    return text


def _checked(
    cls: type[Schema],
    spec: Field,
    value: Any,
    earlier: dict[str, Any],
    loc: Loc,
    errors: list[Problem],
    context: Context,
) -> Any:
    before, after = cls.__schema_key_checks__.get(spec.name, ((), ()))
    try:
        for name in before:
            value = getattr(cls, name)(value)
        value = spec.convert(value, loc, errors, context)
        if value is BAD:
            return BAD
        for name in after:
            value = getattr(cls, name)(value, earlier)
    except ValueError as exc:
        errors.append(Problem(loc, "value_error", str(exc)))
        return BAD
    return value


def _unresolved(value: Any, loc: Loc, errors: list[Problem], context: Context) -> Any:
    raise AssertionError("a field's type is resolved before it validates")


def _converter(annotation: Any, spec: Field | None = None) -> Convert:
    """What checks and converts a value of this type (constraints: spec's)."""
    origin, arguments = typing.get_origin(annotation), typing.get_args(annotation)
    if origin is typing.Union or origin is types.UnionType:
        others = [a for a in arguments if a is not type(None)]
        if len(others) != 1 or len(arguments) != 2:
            raise TypeError(f"only X | None unions are supported, not {annotation}")
        inner = _converter(others[0], spec)
        return lambda v, loc, errors, context: None if v is None else inner(v, loc, errors, context)
    if origin is Literal:
        return literal(arguments)
    if origin in (tuple, list):
        if origin is tuple and (len(arguments) != 2 or arguments[1] is not Ellipsis):
            raise TypeError(f"only tuple[X, ...] is supported, not {annotation}")
        return _sequence(origin, _converter(arguments[0]), spec)
    if origin is dict:
        return _mapping(_converter(arguments[1]))
    if isinstance(annotation, type) and issubclass(annotation, Schema):
        section = annotation
        return lambda v, loc, errors, context: _section(section, v, loc, errors, context)
    if annotation in SCALARS:
        return scalar(annotation, *SCALARS[annotation], limits(spec))
    raise TypeError(f"unsupported type {annotation}")


def _sequence(kind: type, item: Convert, spec: Field | None) -> Convert:
    least = spec.min_length if spec is not None else None
    name = kind.__name__

    def convert(value: Any, loc: Loc, errors: list[Problem], context: Context) -> Any:
        if not isinstance(value, tuple | list):
            errors.append(Problem(loc, f"{name}_type", f"Input should be a valid {name}"))
            return BAD
        first = len(errors)
        items = [item(v, (*loc, i), errors, context) for i, v in enumerate(value)]
        if len(errors) > first:
            return BAD
        if least is not None and len(items) < least:
            message = (f"{name.title()} should have at least {count(least, 'item')} after"
                       f" validation, not {len(items)}")  # fmt: skip
            errors.append(Problem(loc, "too_short", message))
            return BAD
        return kind(items)

    return convert


def _mapping(item: Convert) -> Convert:
    def convert(value: Any, loc: Loc, errors: list[Problem], context: Context) -> Any:
        if not isinstance(value, Mapping) or not all(isinstance(k, str) for k in value):
            errors.append(Problem(loc, "dict_type", "Input should be a valid dictionary"))
            return BAD
        first = len(errors)
        items = {k: item(v, (*loc, k), errors, context) for k, v in value.items()}
        return BAD if len(errors) > first else items

    return convert
