"""Load an experiment file: a Python file that sets a module-level `experiment`, or defines
`make_experiment(...)` whose keyword arguments are settings given with `--set NAME=VALUE`
(sweep/settings.py)."""

from __future__ import annotations

import dataclasses
import re
import runpy
import traceback
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

from quokka_ray.config import ConfigError
from quokka_ray.sweep.checks import check_plan
from quokka_ray.sweep.grid import TrialSpec, plan_trials
from quokka_ray.sweep.settings import MAKER, resolve_settings
from quokka_ray.sweep.spec import Experiment


def load_experiment(path: str | Path, assignments: Mapping[str, str] | None = None) -> Experiment:
    """The experiment a file builds; `assignments` ({name: text}, from `--set`) are its
    settings. See load_experiment_file."""
    return load_experiment_file(path, assignments)[0]


def load_experiment_file(path: str | Path, assignments: Mapping[str, str] | None = None
                         ) -> tuple[Experiment, dict[str, Any]]:
    """Run the file and return its `experiment` (or what its `make_experiment(**settings)`
    returns), named after the file unless it names itself, and the settings it was built with
    (every keyword argument of make_experiment, defaults included; none for a file that sets
    `experiment`). Every mistake becomes a ConfigError of one line naming the file (and line)."""
    path = Path(path)
    given = dict(assignments or {})
    if not path.is_file():
        raise ConfigError(f"{path}: no such experiment file")
    namespace = _run_user_code(path, lambda: runpy.run_path(str(path), run_name="quokka_experiment"))
    maker = namespace.get(MAKER)
    if callable(maker):
        if "experiment" in namespace:
            raise ConfigError(f"{path}: sets both `experiment` and `{MAKER}`; keep one")
        try:
            settings = resolve_settings(maker, given)
        except ConfigError as err:
            raise ConfigError(f"{path}: {err}") from None
        experiment = _run_user_code(path, lambda: maker(**settings))
        found = f"{MAKER}() returned {type(experiment).__name__}"
    else:
        if given:
            name, text = next(iter(given.items()))
            raise ConfigError(f"{path}: --set {name}={text}: the file sets `experiment` and takes "
                              f"no settings (a file that takes settings defines {MAKER}(...))")
        experiment, settings = namespace.get("experiment"), {}
        found = f"found {type(experiment).__name__}"
    if not isinstance(experiment, Experiment):
        raise ConfigError(
            f"{path}: must set a module-level `experiment = Experiment(...)` or define "
            f"`{MAKER}(...)` returning one ({found})")
    if experiment.name is None:
        experiment = dataclasses.replace(experiment, name=path.stem)
    if not re.fullmatch(r"[A-Za-z0-9_.-]+", experiment.name):
        raise ConfigError(f"{path}: Experiment.name {experiment.name!r} may hold only "
                          "letters, digits, '_', '.' and '-'")
    return experiment, settings


def load_plan(path: str | Path, assignments: Mapping[str, str] | None = None
              ) -> tuple[Experiment, list[TrialSpec]]:
    """The experiment of a file and every trial it implies, with every check that can run
    before anything starts; a mistake is a ConfigError of one line naming the file."""
    experiment = load_experiment(path, assignments)
    return experiment, checked_trials(path, experiment)


def checked_trials(path: str | Path, experiment: Experiment) -> list[TrialSpec]:
    """Every trial of the experiment of file `path`, checked (plan_trials, check_plan)."""
    try:
        trials = plan_trials(experiment)
        check_plan(experiment, trials)
    except ConfigError as err:
        raise ConfigError(f"{path}: {err}") from None
    return trials


def _run_user_code(path: Path, run: Callable[[], Any]) -> Any:
    """`run()`, with any failure of the file's code as a ConfigError naming its line."""
    try:
        return run()
    except ConfigError as err:
        raise ConfigError(f"{_where(path, err)}: {err}") from None
    except (TypeError, ValueError) as err:
        raise ConfigError(f"{_where(path, err)}: {_explain(err)}") from None
    except SyntaxError as err:
        raise ConfigError(f"{path}:{err.lineno}: syntax error: {err.msg}") from None
    except Exception as err:  # noqa: BLE001 - any failure of user code is reported, not raised
        raise ConfigError(f"{_where(path, err)}: {type(err).__name__}: {err}") from None


def _where(path: Path, err: BaseException) -> str:
    """`file:line` of the deepest frame inside the experiment file."""
    line = None
    for frame in traceback.extract_tb(err.__traceback__):
        if Path(frame.filename).resolve() == path.resolve():
            line = frame.lineno
    return f"{path}:{line}" if line else str(path)


def _explain(err: Exception) -> str:
    message = str(err)
    unknown = re.search(r"(\w+)\.__init__\(\) got an unexpected keyword argument '(\w+)'", message)
    if unknown:
        cls, name = unknown.groups()
        return f"{cls}: unknown field {name!r}{_valid_fields(cls)}"
    return message


def _valid_fields(cls_name: str) -> str:
    from quokka_ray import sweep

    cls = getattr(sweep, cls_name, None)
    if cls is None or not dataclasses.is_dataclass(cls):
        return ""
    return f" (fields: {', '.join(f.name for f in dataclasses.fields(cls))})"
