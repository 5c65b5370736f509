"""Python source for configuration values: the dataclasses of an experiment file, written back
as the constructor calls that build them (fields at their default left out), and Ray Tune
search spaces as the `tune.*` calls that make them. `quokka fit --propose` writes experiment
files with it; what it cannot write (a `tune.sample_from`) is refused with the field's name."""

from __future__ import annotations

import dataclasses
from typing import Any

from quokka_ray.config import ConfigError, is_grid, is_search_space

# Tune's domain class and sampler -> the tune function that builds that domain.
_SPACES = {
    ("Float", "_Uniform"): "uniform", ("Float", "_LogUniform"): "loguniform",
    ("Integer", "_Uniform"): "randint", ("Integer", "_LogUniform"): "lograndint",
}
#: Longest line a rendered call keeps on one line (the project's ruff line length less room
#: for the field name in front of it).
LINE_LENGTH = 88
_QUANTIZED = {"uniform": "quniform", "loguniform": "qloguniform", "randint": "qrandint",
              "lograndint": "qlograndint"}


class Source:
    """Renders values and collects the names the rendered code needs imported."""

    def __init__(self) -> None:
        self.classes: set[str] = set()
        self.uses_tune = False

    def value(self, value: Any, where: str = "value", indent: str = "") -> str:
        """`value` as a Python expression that rebuilds it; `indent`: of the line it starts on,
        for a dataclass too long for one line."""
        if dataclasses.is_dataclass(value) and not isinstance(value, type):
            return self.call(value, where, indent)
        if is_grid(value):
            self.uses_tune = True
            return f"tune.grid_search({self.value(list(value['grid_search']), where)})"
        if is_search_space(value):
            return self.space(value, where)
        if isinstance(value, list):
            return "[" + ", ".join(self.value(v, where, indent) for v in value) + "]"
        if isinstance(value, tuple):
            items = [self.value(v, where, indent) for v in value]
            return "(" + ", ".join(items) + ("," if len(items) == 1 else "") + ")"
        if isinstance(value, dict):
            return "{" + ", ".join(f"{self.value(k, where)}: {self.value(v, where)}"
                                   for k, v in value.items()) + "}"
        if value is None or isinstance(value, (bool, int, float, str)):
            return repr(value)  # repr of a float round-trips exactly
        raise ConfigError(f"{where}: cannot write a {type(value).__name__} into an "
                          "experiment file")

    def call(self, obj: Any, where: str = "", indent: str = "", wrap: bool = False) -> str:
        """`Class(field=value, ...)` with the fields that differ from their defaults, on one
        line if it fits (and `wrap` is not asked), else one field per line."""
        cls = type(obj).__name__
        self.classes.add(cls)
        inner = indent + "    "
        args = []
        for f in dataclasses.fields(obj):
            value = getattr(obj, f.name)
            if _is_default(f, value):
                continue
            args.append(f"{f.name}={self.value(value, f'{cls}.{f.name}', inner)}")
        line = f"{cls}({', '.join(args)})"
        if not wrap and "\n" not in line and len(indent) + len(line) <= LINE_LENGTH:
            return line
        return f"{cls}(\n" + "".join(f"{inner}{a},\n" for a in args) + f"{indent})"

    def space(self, domain: Any, where: str) -> str:
        """A Tune search space (choice, uniform, loguniform, randint, their q- forms)."""
        self.uses_tune = True
        kind = type(domain).__name__
        if kind == "Categorical":
            return f"tune.choice({self.value(list(domain.categories), where)})"
        sampler = domain.get_sampler()
        q = getattr(sampler, "q", None)
        if q is not None:
            sampler = sampler.sampler
        name = _SPACES.get((kind, type(sampler).__name__))
        if name is None:
            raise ConfigError(f"{where}: cannot write the search space {domain!r} into an "
                              "experiment file; use choice, uniform, loguniform or randint")
        args = [self.value(domain.lower, where), self.value(domain.upper, where)]
        if q is not None:
            name = _QUANTIZED[name]
            args.append(self.value(q, where))
        return f"tune.{name}({', '.join(args)})"


def _is_default(f: dataclasses.Field, value: Any) -> bool:
    if f.default is not dataclasses.MISSING:
        default = f.default
    elif f.default_factory is not dataclasses.MISSING:
        default = f.default_factory()
    else:
        return False
    if is_search_space(value) and not is_grid(value):
        return False  # Tune domains compare by identity
    try:
        return bool(value == default) and type(value) is type(default)
    except Exception:  # noqa: BLE001 - a value that cannot be compared is written out
        return False
