"""Load an experiment file: a Python file that sets a module-level `experiment`."""

from __future__ import annotations

import dataclasses
import re
import runpy
import traceback
from pathlib import Path

from quokka_ray.config import ConfigError
from quokka_ray.sweep.checks import check_plan
from quokka_ray.sweep.grid import TrialSpec, plan_trials
from quokka_ray.sweep.spec import Experiment


def load_experiment(path: str | Path) -> Experiment:
    """Run the file and return its `experiment`, named after the file unless it names itself.
    Every mistake becomes a ConfigError of one line naming the file (and line)."""
    path = Path(path)
    if not path.is_file():
        raise ConfigError(f"{path}: no such experiment file")
    try:
        namespace = runpy.run_path(str(path), run_name="quokka_experiment")
    except ConfigError as err:
        raise ConfigError(f"{_where(path, err)}: {err}") from None
    except (TypeError, ValueError) as err:
        raise ConfigError(f"{_where(path, err)}: {_explain(err)}") from None
    except SyntaxError as err:
        raise ConfigError(f"{path}:{err.lineno}: syntax error: {err.msg}") from None
    except Exception as err:  # noqa: BLE001 - any failure of user code is reported, not raised
        raise ConfigError(f"{_where(path, err)}: {type(err).__name__}: {err}") from None
    experiment = namespace.get("experiment")
    if not isinstance(experiment, Experiment):
        raise ConfigError(
            f"{path}: must set a module-level `experiment = Experiment(...)` "
            f"(found {type(experiment).__name__})")
    if experiment.name is None:
        experiment = dataclasses.replace(experiment, name=path.stem)
    if not re.fullmatch(r"[A-Za-z0-9_.-]+", experiment.name):
        raise ConfigError(f"{path}: Experiment.name {experiment.name!r} may hold only "
                          "letters, digits, '_', '.' and '-'")
    return experiment


def load_plan(path: str | Path) -> tuple[Experiment, list[TrialSpec]]:
    """The experiment of a file and every trial it implies, with every check that can run
    before anything starts; a mistake is a ConfigError of one line naming the file."""
    experiment = load_experiment(path)
    try:
        trials = plan_trials(experiment)
        check_plan(experiment, trials)
    except ConfigError as err:
        raise ConfigError(f"{path}: {err}") from None
    return experiment, trials


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
