"""Settings of an experiment file, given on the command line as `--set NAME=VALUE`.

A file that takes settings defines a function `make_experiment` instead of setting
`experiment`. Its keyword arguments are the settings, their defaults the values used when none
is given, and their annotations the values they accept:

    def make_experiment(scale: Literal["tiny", "paper"] = "tiny") -> Experiment:
        ...

`quokka plan FILE --set scale=paper` calls `make_experiment(scale="paper")`. A value is read
from text by its annotation (a `Literal` of choices, str, int, float or bool; an unannotated
setting takes its default's type), so a misspelt name or a value outside the choices is
refused, with the setting and the value, before the function runs."""

from __future__ import annotations

import inspect
import typing
from collections.abc import Callable, Sequence
from typing import Any, Literal

from quokka_ray.config import ConfigError

#: The function an experiment file defines to take settings.
MAKER = "make_experiment"

_KINDS = (str, int, float, bool)


def parse_assignments(texts: Sequence[str] | None) -> dict[str, str]:
    """{"scale": "paper"} from the texts of `--set scale=paper` (each NAME=VALUE)."""
    given: dict[str, str] = {}
    for text in texts or ():
        name, sep, value = text.partition("=")
        name = name.strip()
        if not sep or not name.isidentifier():
            raise ConfigError(f"--set {text}: expected NAME=VALUE (for example --set scale=paper)")
        if name in given:
            raise ConfigError(f"--set {text}: {name!r} is set twice")
        given[name] = value.strip()
    return given


def resolve_settings(maker: Callable[..., Any], given: dict[str, str]) -> dict[str, Any]:
    """Every setting `maker` declares, with its value: the given text read by the setting's
    annotation, else its default. ConfigError names the setting and the value."""
    declared = _declared(maker)
    for name, text in given.items():
        if name not in declared:
            known = ", ".join(declared) or "none"
            raise ConfigError(f"--set {name}={text}: unknown setting {name!r} "
                              f"({MAKER} takes: {known})")
    values = {}
    for name, (kind, default) in declared.items():
        if name in given:
            values[name] = _read(name, given[name], kind)
        elif default is inspect.Parameter.empty:
            raise ConfigError(f"setting {name!r} has no default: give --set {name}=VALUE")
        else:
            values[name] = default
    return values


def _declared(maker: Callable[..., Any]) -> dict[str, tuple[Any, Any]]:
    """{name: (annotation, default)} of the maker's keyword arguments."""
    try:
        hints = typing.get_type_hints(maker)
    except Exception as err:  # noqa: BLE001 - a bad annotation is the file's mistake
        raise ConfigError(f"{MAKER}: its annotations cannot be read ({err})") from None
    declared = {}
    for name, parameter in inspect.signature(maker).parameters.items():
        if parameter.kind in (parameter.VAR_POSITIONAL, parameter.VAR_KEYWORD,
                              parameter.POSITIONAL_ONLY):
            raise ConfigError(f"{MAKER}: settings are named keyword arguments; {parameter} "
                              "cannot be given with --set")
        default = parameter.default
        kind = hints.get(name, type(default) if default is not parameter.empty else str)
        if not _readable(kind):
            raise ConfigError(f"{MAKER}: setting {name!r} is annotated {kind!r}; --set gives a "
                              "Literal[...] choice, str, int, float or bool")
        if default is not parameter.empty:
            _check_default(name, default, kind)
        declared[name] = (kind, default)
    return declared


def _readable(kind: Any) -> bool:
    if typing.get_origin(kind) is Literal:
        return all(type(option) in _KINDS for option in typing.get_args(kind))
    return kind in _KINDS


def _check_default(name: str, default: Any, kind: Any) -> None:
    if typing.get_origin(kind) is Literal:
        ok = default in typing.get_args(kind)
    else:
        ok = isinstance(default, kind) or (kind is float and type(default) is int)
    if not ok:
        raise ConfigError(f"{MAKER}: setting {name!r} defaults to {default!r}, which is not "
                          f"{_expected(kind)}")


def _read(name: str, text: str, kind: Any) -> Any:
    """The value of `--set name=text` for a setting annotated `kind`."""
    if typing.get_origin(kind) is Literal:
        for option in typing.get_args(kind):
            if text == str(option) or (type(option) is bool and text.lower() == str(option).lower()):
                return option
    elif kind is bool:
        if text.lower() in ("true", "false"):
            return text.lower() == "true"
    elif kind is str:
        return text
    else:
        try:
            return kind(text)
        except ValueError:
            pass
    raise ConfigError(f"--set {name}={text}: expected {_expected(kind)}")


def _expected(kind: Any) -> str:
    if typing.get_origin(kind) is Literal:
        return "one of " + ", ".join(repr(option) for option in typing.get_args(kind))
    if kind is bool:
        return "true or false"
    return {int: "an integer", float: "a number", str: "text"}[kind]
