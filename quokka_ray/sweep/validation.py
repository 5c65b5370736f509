"""Type checks for the experiment dataclasses, so that a mistake in an experiment file is
reported with the field's name before anything starts."""

from __future__ import annotations

import dataclasses
import types
import typing
from typing import Any

from ray.tune.search.sample import Domain


class ExperimentError(ValueError):
    """A mistake in an experiment file; the message names the field."""


class Searchable:
    """Marker in a type hint: the field may also hold a Ray Tune search space."""


def is_search_space(value: Any) -> bool:
    return isinstance(value, Domain) or (isinstance(value, dict) and "grid_search" in value)


def grid_values(value: Any) -> list | None:
    return list(value["grid_search"]) if isinstance(value, dict) and "grid_search" in value else None


def check_types(obj: Any) -> None:
    """Raise ExperimentError naming the first field whose value does not fit its hint."""
    hints = typing.get_type_hints(type(obj), include_extras=True)
    for f in dataclasses.fields(obj):
        value = getattr(obj, f.name)
        hint = hints[f.name]
        searchable = _strip_searchable(hint)
        if searchable is not hint:
            if is_search_space(value):
                for option in grid_values(value) or []:
                    _check(f"{type(obj).__name__}.{f.name}", option, searchable)
                continue
            hint = searchable
        elif is_search_space(value):
            raise ExperimentError(
                f"{type(obj).__name__}.{f.name}: cannot be searched (a Tune search space was given)")
        _check(f"{type(obj).__name__}.{f.name}", value, hint)


def _strip_searchable(hint: Any) -> Any:
    if typing.get_origin(hint) is typing.Annotated and Searchable in typing.get_args(hint)[1:]:
        return typing.get_args(hint)[0]
    return hint


def _check(where: str, value: Any, hint: Any) -> None:
    if not _fits(value, hint):
        raise ExperimentError(
            f"{where}: expected {_describe(hint)}, got {type(value).__name__} {value!r}")


def _fits(value: Any, hint: Any) -> bool:
    if hint is Any:
        return True
    origin = typing.get_origin(hint)
    if origin is typing.Annotated:
        return _fits(value, typing.get_args(hint)[0])
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


def _describe(hint: Any) -> str:
    origin = typing.get_origin(hint)
    if origin in (typing.Union, types.UnionType):
        return " or ".join(_describe(a) for a in typing.get_args(hint))
    if origin is not None:
        return str(hint).replace("typing.", "")
    return getattr(hint, "__name__", str(hint))
