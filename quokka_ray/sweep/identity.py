"""A trial's identity: everything that shapes what it trains or measures, in a canonical form
that is the same in every process and on every machine, and the name digested from it.

What changes a result is in the settings: the study point, the objective, the model shape,
the tokens, every hyperparameter (or its search space), the seed, the data and the evaluation.
What does not is left out (worker counts, CPUs, GPUs, micro-batches, checkpoint interval,
where shards are cached, the prediction a proposed experiment carries), so a trial keeps its
name, and its checkpoints, on any cluster."""

from __future__ import annotations

import dataclasses
import hashlib
import inspect
import json
from typing import Any

from quokka_ray.config import ConfigError, is_grid, is_search_space
from quokka_ray.data.config import DataConfig
from quokka_ray.diffusion import ObjectiveConfig
from quokka_ray.model import ModelConfig
from quokka_ray.train.config import EvaluationConfig, Hyperparameters

# DataConfig fields that say where shards are kept, not what they hold.
DATA_FIELDS_LEFT_OUT = ("cache_dir",)


def canonical(value: Any) -> Any:
    """A JSON value that stands for `value` the same way in every process: dataclasses and
    search spaces by their fields (never by repr, which holds memory addresses)."""
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        return {f.name: canonical(getattr(value, f.name)) for f in dataclasses.fields(value)}
    if is_grid(value):
        return {"grid_search": [canonical(v) for v in value["grid_search"]]}
    if is_search_space(value):
        return _space(value)
    if isinstance(value, dict):
        return {str(k): canonical(v) for k, v in sorted(value.items())}
    if isinstance(value, (list, tuple)):
        return [canonical(v) for v in value]
    if isinstance(value, float) and value.is_integer() and abs(value) < 2**53:
        return int(value)  # 1e3 and 1000 are one setting
    if value is None or isinstance(value, (bool, int, float, str)):
        return value
    raise ConfigError(f"cannot name a setting of type {type(value).__name__}: {value!r}")


def _space(domain: Any) -> dict:
    """A Tune domain (tune.loguniform(1e-4, 1e-2), tune.choice([...]), quantized ones, ...)
    as its class and public attributes, its sampler included."""
    fields = {"space": type(domain).__name__}
    for key, attribute in sorted(vars(domain).items()):
        if key.startswith("_") and key != "_sampler":
            continue
        if inspect.isroutine(attribute):
            raise ConfigError(f"search space {domain!r} holds a function: it cannot be named")
        if hasattr(attribute, "__dict__") and not isinstance(attribute, type):
            fields[key.lstrip("_")] = _space(attribute)
        else:
            fields[key.lstrip("_")] = canonical(attribute)
    return fields


def objective_settings(objective: ObjectiveConfig) -> dict:
    # An AR run ignores every diffusion field: two AR objectives that differ only there are one.
    return {"kind": "ar"} if objective.kind == "ar" else canonical(objective)


def trial_settings(*, study_point: dict, objective: ObjectiveConfig, model: ModelConfig,
                   tokens: int | None, hyperparameters: Hyperparameters, seed: int,
                   data: DataConfig, evaluation: EvaluationConfig) -> dict:
    data_settings = {k: v for k, v in canonical(data).items() if k not in DATA_FIELDS_LEFT_OUT}
    # The attention kernel is a speed setting (PerformanceConfig), not part of the model.
    model_settings = {k: v for k, v in canonical(model).items() if k != "attention_backend"}
    return {"study_point": canonical(study_point), "objective": objective_settings(objective),
            "model": model_settings, "tokens": tokens,
            "hyperparameters": canonical(hyperparameters), "seed": seed, "data": data_settings,
            "evaluation": canonical(evaluation)}


def digest(settings: Any) -> str:
    return hashlib.sha256(json.dumps(canonical(settings), sort_keys=True,
                                     separators=(",", ":")).encode()).hexdigest()


def flatten(settings: Any, prefix: str = "") -> dict[str, Any]:
    """{"data.source": "stdlib", ...}: dotted keys to leaf values."""
    if isinstance(settings, dict) and settings and "space" not in settings \
            and "grid_search" not in settings:
        out: dict[str, Any] = {}
        for k, v in settings.items():
            out.update(flatten(v, f"{prefix}{k}."))
        return out
    return {prefix.rstrip("."): json.dumps(settings, sort_keys=True)}


def changed_settings(stored: dict[str, dict], planned: dict[str, dict]) -> list[str]:
    """What differs between two plans ({trial name: settings}), as "key: old -> new" lines,
    one per setting, the values of every trial pooled."""
    def values(plan: dict[str, dict]) -> dict[str, set[str]]:
        pooled: dict[str, set[str]] = {}
        for settings in plan.values():
            for key, value in flatten(settings).items():
                pooled.setdefault(key, set()).add(value)
        return pooled

    old, new = values(stored), values(planned)
    lines = []
    for key in sorted(old.keys() | new.keys()):
        if old.get(key) != new.get(key):
            lines.append(f"{key}: {_show(old.get(key))} -> {_show(new.get(key))}")
    if not lines and stored.keys() != planned.keys():
        lines.append(f"trials: {len(stored)} stored, {len(planned)} planned")
    return lines


def _show(values: set[str] | None) -> str:
    if not values:
        return "(absent)"
    shown = sorted(values)
    text = ", ".join(shown[:4]) + (f", ... ({len(shown)} values)" if len(shown) > 4 else "")
    return text if len(shown) == 1 else "{" + text + "}"
