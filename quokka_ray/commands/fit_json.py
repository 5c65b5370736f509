"""`quokka fit --json`: a fit as one JSON object, for programs.

    {"experiment": name (null for --csv), "target_column": the loss column the laws fit,
     "objectives": {label: {"objective", "runs", "laws", "held_out", "skipped", "proposal",
                            "suggestions", "summary"}},
     "report": the report (or --csv's fit.json; null without one), ...}

Every fit object is written out whole, from its dataclass, so that a field added to a law
later appears here with no change: each field (those declared repr=False, the bootstrap draws
and candidate pools behind the intervals, are left out) and each public property (vertex_inside
of a budget's parabola, a parametric law's allocation k_N, a, ...); a property the fit cannot
give (a parametric law without an allocation) is left out and its error is given under
"unavailable". Numbers that are not finite (nan, inf) are null, tuples are lists.
"""

from __future__ import annotations

import dataclasses
import inspect
import math
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from quokka_ray.laws.csv_fit import DEFAULT_COLUMNS, CsvFit
from quokka_ray.laws.report import Report
from quokka_ray.laws.sections import MIN_BOOTSTRAP_RUNS
from quokka_ray.laws.selection import split_by_objective

#: The column the compute-constrained laws of an experiment's fit fit (laws/sections.py);
#: the data-constrained law fits val_loss where the runs recorded it.
#: Keys of a report's fits that are not laws: held-out checks end in this.
HELD_OUT_SUFFIX = "_holdout"
LOOP_KEYS = ("proposal", "suggestions")


def jsonable(value: Any) -> Any:
    """`value` as JSON values: dataclasses as their fields and public properties, numpy values
    as Python's, non-finite numbers as None, paths as text."""
    if value is None or isinstance(value, (bool, str)):
        return value
    if isinstance(value, np.bool_):
        return bool(value)
    if isinstance(value, (int, np.integer)):
        return int(value)
    if isinstance(value, (float, np.floating)):
        return float(value) if math.isfinite(value) else None
    if isinstance(value, np.ndarray):
        return [jsonable(v) for v in value.tolist()]
    if isinstance(value, Path):
        return str(value)
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        return _dataclass(value)
    if isinstance(value, Mapping):
        return {str(k): jsonable(v) for k, v in value.items()}
    if isinstance(value, (list, tuple, set, frozenset)):
        return [jsonable(v) for v in value]
    return str(value)


def _dataclass(obj: Any) -> dict:
    out = {f.name: jsonable(getattr(obj, f.name)) for f in dataclasses.fields(obj) if f.repr}
    unavailable = {}
    for name, _ in inspect.getmembers(type(obj), lambda a: isinstance(a, property)):
        if name.startswith("_") or name in out:
            continue
        try:
            out[name] = jsonable(getattr(obj, name))
        except (ValueError, ArithmeticError) as err:  # e.g. no compute-optimal allocation
            unavailable[name] = str(err)
    if unavailable and "unavailable" not in out:
        out["unavailable"] = unavailable
    return out


def _laws(fits: Mapping[str, object]) -> tuple[dict, dict]:
    """(laws, held-out checks) of one objective's fits, by the report's keys."""
    laws = {k: jsonable(v) for k, v in fits.items()
            if k not in LOOP_KEYS and not k.endswith(HELD_OUT_SUFFIX)}
    held = {k.removesuffix(HELD_OUT_SUFFIX): jsonable(v) for k, v in fits.items()
            if k.endswith(HELD_OUT_SUFFIX)}
    return laws, held


def summary_blocks(report: Report) -> tuple[dict[str, list[str]], list[str]]:
    """The printed summary split into each objective's lines (its heading and the indented
    lines under it) and the rest (title, notes, predictions, transfer verdicts)."""
    headings = {f"{o.title()}: ": label for label, o in report.objectives.items()}
    own: dict[str, list[str]] = {label: [] for label in report.objectives}
    shared: list[str] = []
    current = None
    for line in report.summary.splitlines():
        if current is not None and line.startswith("  "):
            own[current].append(line.strip())
            continue
        current = next((label for head, label in headings.items() if line.startswith(head)),
                       None)
        (own[current] if current is not None else shared).append(line)
    return own, shared


def experiment_fit_json(name: str, outcome, report: Report, table: pd.DataFrame,
                        written: list[tuple[str, Path]], n_bootstrap: int, seed: int) -> dict:
    """`quokka fit EXPERIMENT --json`: outcome is analysis.FitOutcome; report and table are
    the report and trial table it was made from; written: (kind, path) of the files written
    from it (proposals, suggestions); n_bootstrap, seed: the replicates asked for (a law
    fitted on fewer than MIN_BOOTSTRAP_RUNS runs gets none) and their seed."""
    runs = {o.label: len(df) for o, df in split_by_objective(table)}
    own, shared = summary_blocks(report)
    objectives = {}
    for label, objective in report.objectives.items():
        fits = report.fits.get(label, {})
        laws, held = _laws(fits)
        objectives[label] = {
            "objective": jsonable(objective), "runs": runs.get(label, 0), "laws": laws,
            "held_out": held, "skipped": dict(report.skipped.get(label, {})),
            **{key: jsonable(fits.get(key)) for key in LOOP_KEYS},
            "summary": own[label],
        }
    return {
        "experiment": name, "target_column": report.target, "trials": outcome.trials,
        "left_out": dict(outcome.left_out), "laws_fitted": list(report.laws),
        "bootstrap": {"replicates": n_bootstrap, "seed": seed,
                      "min_runs": MIN_BOOTSTRAP_RUNS},
        "objectives": objectives,
        "transfer": {label: jsonable(t) for label, t in report.transfer.items()},
        "summary": shared, "report": str(outcome.markdown_path),
        "plots": [str(p) for p in outcome.plot_paths],
        "written": [{"kind": kind, "path": str(path)} for kind, path in written],
        "fit_run_id": outcome.fit_run_id,
    }


def csv_fit_json(result: CsvFit, columns: Mapping[str, str | None], n_bootstrap: int,
                 seed: int) -> dict:
    """`quokka fit --csv FILE --json`: the one law fitted, as the one objective of the file
    (labelled by the file's stem); columns: role -> the column named by its flag (None: the
    default column, DEFAULT_COLUMNS); n_bootstrap, seed: the replicates asked for."""
    laws, held = _laws({result.law.replace("-", "_"): result.fit})
    return {
        "experiment": None, "csv": str(result.path),
        "target_column": columns.get("loss") or DEFAULT_COLUMNS["loss"],
        "columns": {role: name for role, name in columns.items() if name},
        "bootstrap": {"replicates": n_bootstrap, "seed": seed},
        "objectives": {result.path.stem: {
            "objective": None, "runs": result.runs, "laws": laws, "held_out": held,
            "skipped": {}, "proposal": None, "suggestions": None, "summary": result.lines}},
        "report": str(result.written[0]) if result.written else None,
        "plots": [str(p) for p in result.written[1:]],
    }
