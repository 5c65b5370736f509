"""What every typed configuration shares: the error a bad setting raises, the marker for fields
that may hold a Ray Tune search space, and the checks of types, choices and ranges that run
when a configuration is built, so that a mistake is named before anything starts.

Knows nothing of Ray: a search space is recognised by the module its class comes from."""

from __future__ import annotations

import dataclasses
import types
import typing
from typing import Any


class ConfigError(ValueError):
    """A bad setting; the message names the field and the value."""


class Searchable:
    """Marker in a type hint (`Annotated[float, Searchable]`): the field may also hold a Ray Tune
    search space (`tune.grid_search`, `tune.loguniform`, `tune.choice`, ...)."""


def is_search_space(value: Any) -> bool:
    return is_grid(value) or type(value).__module__ == "ray.tune.search.sample"


def is_grid(value: Any) -> bool:
    return isinstance(value, dict) and set(value) == {"grid_search"}


def grid_values(value: Any) -> list | None:
    return list(value["grid_search"]) if is_grid(value) else None


def space_bounds(value: Any) -> list:
    """The values a search space can take at its edges: every grid value or category, or the
    lower and upper bound of a numeric range. Range checks run on these."""
    if is_grid(value):
        return list(value["grid_search"])
    if hasattr(value, "categories"):
        return list(value.categories)
    return [getattr(value, "lower", None), getattr(value, "upper", None)]


def require(ok: bool, where: str, value: Any, expected: str) -> None:
    """Raise ConfigError("where: expected ..., got value") unless `ok`."""
    if not ok:
        raise ConfigError(f"{where}: expected {expected}, got {value!r}")


def check_types(obj: Any) -> None:
    """Raise ConfigError naming the first field whose value does not fit its type hint
    (Literal choices included). A `Searchable` field may hold a search space, whose grid values
    and categories must fit the hint too."""
    hints = typing.get_type_hints(type(obj), include_extras=True)
    for f in dataclasses.fields(obj):
        value = getattr(obj, f.name)
        hint = hints[f.name]
        where = f"{type(obj).__name__}.{f.name}"
        inner = _strip_searchable(hint)
        if is_search_space(value):
            if inner is hint:
                raise ConfigError(f"{where}: cannot be searched (a Tune search space was given)")
            if type(value).__name__ == "Function":
                raise ConfigError(f"{where}: tune.sample_from cannot be named in a stable way; "
                                  "use tune.choice, tune.uniform, tune.loguniform or grid_search")
            choices = grid_values(value) or list(getattr(value, "categories", []))
            if not choices and is_grid(value):
                raise ConfigError(f"{where}: an empty grid_search")
            for option in choices:
                _check(where, option, inner)
            continue
        _check(where, value, inner)


def _strip_searchable(hint: Any) -> Any:
    if typing.get_origin(hint) is typing.Annotated and Searchable in typing.get_args(hint)[1:]:
        return typing.get_args(hint)[0]
    return hint


def _check(where: str, value: Any, hint: Any) -> None:
    if not _fits(value, hint):
        shown = f"{type(value).__name__} {value!r}"
        raise ConfigError(f"{where}: expected {describe(hint)}, got {shown}")


def _fits(value: Any, hint: Any) -> bool:
    if hint is Any:
        return True
    origin = typing.get_origin(hint)
    if origin is typing.Annotated:
        return _fits(value, typing.get_args(hint)[0])
    if origin is typing.Literal:
        return any(value == option and type(value) is type(option)
                   for option in typing.get_args(hint))
    if origin in (typing.Union, types.UnionType):
        return any(_fits(value, option) for option in typing.get_args(hint))
    if hint is type(None):
        return value is None
    if hint is float:
        return isinstance(value, (int, float)) and not isinstance(value, bool)
    if hint is int:
        return isinstance(value, int) and not isinstance(value, bool)
    if origin in (list, tuple):
        if not isinstance(value, (list, tuple)):
            return False
        args = typing.get_args(hint)
        if origin is tuple and args and args[-1] is not Ellipsis:
            return len(value) == len(args) and all(
                _fits(v, a) for v, a in zip(value, args, strict=True))
        return all(_fits(v, args[0]) for v in value) if args else True
    if origin is dict:
        return isinstance(value, dict)
    if isinstance(hint, type):
        return isinstance(value, hint)
    return True


def describe(hint: Any) -> str:
    origin = typing.get_origin(hint)
    if origin is typing.Annotated:
        return describe(typing.get_args(hint)[0])
    if origin is typing.Literal:
        return "one of " + ", ".join(repr(a) for a in typing.get_args(hint))
    if origin in (typing.Union, types.UnionType):
        return " or ".join(describe(a) for a in typing.get_args(hint))
    if origin is not None:
        args = ", ".join("..." if a is Ellipsis else describe(a) for a in typing.get_args(hint))
        return f"{getattr(origin, '__name__', str(origin))}[{args}]"
    return getattr(hint, "__name__", str(hint))
