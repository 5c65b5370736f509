"""`quokka fit --json`: stdout holds one JSON object and nothing else, and its values are the
fit objects' own: the reference CSV files fitted again in-process, and an experiment's runs
recorded in a real MLflow store (SQLite) the way trials record them (losses from a known
IsoFLOP law, no training) fitted again from the trial table the fit wrote."""

from __future__ import annotations

import json
import math
import subprocess
import sys

import numpy as np
import pandas as pd
import pytest

from quokka_ray.cli import main
from quokka_ray.commands.fit_json import jsonable
from quokka_ray.data import prepare_shards, read_manifest
from quokka_ray.laws import fit_csv, write_report
from quokka_ray.laws.isoflop import BudgetParabola
from quokka_ray.laws.published import REFERENCE_DIR
from quokka_ray.sweep import load_plan
from quokka_ray.sweep.checks import corpus_from_manifest
from quokka_ray.tracking import MlflowStore
from tests.conftest import EXPERIMENTS, REPO
from tests.test_fit_runs import _record

ISOFLOP_COLUMNS = {"c": "C_flops", "n": "N_params_plot", "loss": "final_train_loss_smoothed"}
LABEL = "dlm-masked-linear-elbo-uniform"
STUDY = ("study=IsoFlopStudy(budgets_flops=[2e9, 6e9, 2e10], "
         "model_sizes=[3_000, 12_000, 55_000, 100_000, 200_000], min_steps=1, "
         "budget_tolerance=0.05),")


def _close(value, expected) -> None:
    """JSON `value` equals `expected` (a number, or nested lists of them) to float precision."""
    if isinstance(expected, (list, tuple, np.ndarray)):
        assert len(value) == len(expected)
        for v, e in zip(value, expected, strict=True):
            _close(v, e)
    elif expected is None or (isinstance(expected, float) and not math.isfinite(expected)):
        assert value is None
    else:
        assert value == pytest.approx(expected, rel=1e-12, abs=0)


def _check_isoflop(law: dict, fit) -> None:
    for name in ("a", "b", "k_N", "k_D", "n_bootstrap_ok"):
        _close(law[name], getattr(fit, name))
    assert set(law["intervals"]) == set(fit.intervals)
    for name, span in fit.intervals.items():
        _close(law["intervals"][name], span)
    assert len(law["budgets"]) == len(fit.budgets)
    for row, parabola in zip(law["budgets"], fit.budgets, strict=True):
        for name in ("budget_flops", "n_opt", "d_opt", "loss_opt", "n_points", "coefficients",
                     "n_range"):
            _close(row[name], getattr(parabola, name))
        assert row["vertex_inside"] is parabola.vertex_inside
    assert law["skipped_budgets"] == [{"budget_flops": s.budget_flops, "reason": s.reason}
                                      for s in fit.skipped_budgets]
    assert "bootstrap_budgets" not in law  # the draws behind the intervals stay out


def test_csv_isoflop_fit_as_json_in_a_process_of_its_own(tmp_path):
    """Run as a command, so that anything printed by any library would land in stdout."""
    path = REFERENCE_DIR / "quokka_isoflop_points.csv"
    argv = ["fit", "--csv", str(path), "--law", "isoflop", "--bootstrap", "30",
            *[x for role, column in ISOFLOP_COLUMNS.items() for x in (f"--{role}-column", column)],
            "--out", str(tmp_path / "out"), "--json"]
    done = subprocess.run([sys.executable, "-m", "quokka_ray.cli", *argv], cwd=REPO,
                          capture_output=True, text=True, check=True, timeout=300)
    payload = json.loads(done.stdout)  # one JSON object, nothing else
    assert f"wrote {tmp_path / 'out' / 'fit.json'}" in done.stderr
    fit = fit_csv(path, "isoflop", columns=ISOFLOP_COLUMNS, n_bootstrap=30).fit
    assert payload["experiment"] is None and payload["csv"] == str(path)
    assert payload["target_column"] == "final_train_loss_smoothed"
    assert payload["report"] == str(tmp_path / "out" / "fit.json")
    (objective,) = payload["objectives"].values()
    assert objective["runs"] == 87 and objective["skipped"] == {}
    assert list(objective["laws"]) == ["isoflop"]
    _check_isoflop(objective["laws"]["isoflop"], fit)
    assert fit.n_bootstrap_ok == 30 and set(fit.intervals) == {"a", "b"}


def test_csv_parametric_fit_as_json(capsys):
    path = REFERENCE_DIR / "chinchilla_svg_extracted_data.csv"
    columns = {"n": "Model Size", "c": "Training FLOP", "loss": "loss"}
    assert main(["fit", "--csv", str(path), "--law", "parametric", "--n-column", "Model Size",
                 "--c-column", "Training FLOP", "--loss-column", "loss",
                 "--drop-highest-loss", "5", "--json"]) == 0
    law = json.loads(capsys.readouterr().out)["objectives"][path.stem]["laws"]["parametric"]
    fit = fit_csv(path, "parametric", columns=columns, drop_highest=5).fit
    for name in ("E", "A", "B", "alpha", "beta", "objective", "n_points",
                 "a", "b", "G", "k_N", "k_D"):  # fields, then the allocation's properties
        _close(law[name], getattr(fit, name))
    assert law["intervals"] == {} and "bootstrap_samples" not in law


def test_non_finite_numbers_are_null_and_failing_properties_are_named():
    from quokka_ray.laws import ParametricFit

    out = jsonable(ParametricFit(E=1.0, A=-2.0, B=3.0, alpha=0.3, beta=np.float32(0.4)))
    assert out["objective"] is None  # nan
    assert "k_N" not in out and "no compute-optimal allocation" in out["unavailable"]["k_N"]
    assert out["a"] == pytest.approx(0.4 / 0.7, rel=1e-6)
    parabola = BudgetParabola(1e9, (0.1, -2.0, 12.0), math.inf, 0.0, 2.0, 3, (1.0, 2.0))
    assert jsonable(parabola)["n_opt"] is None and jsonable(parabola)["vertex_inside"] is False
    json.dumps(jsonable({"x": np.array([1.0, np.nan]), 2: (np.int64(3),)}), allow_nan=False)


def law_loss(n: float, c: float, rng) -> float:
    n_opt = 3e4 * (c / 6e9) ** 0.45
    return 5.0 * c**-0.02 + 0.3 * np.log(n / n_opt) ** 2 + rng.normal(0, 0.003)


def test_experiment_fit_as_json(tmp_path, data_cache, monkeypatch, capfd):
    """Three budgets of five sizes: the IsoFLOP, parametric and data-constrained laws, and the
    held-out checks."""
    monkeypatch.setenv("QUOKKA_TEST_CACHE", str(data_cache))
    text = (EXPERIMENTS / "tiny_isoflop.py").read_text()
    start = text.index("study=IsoFlopStudy(")
    end = text.index("\n", text.index("budget_tolerance=0.05)", start))
    path = tmp_path / "json_fit.py"
    path.write_text(text[:start] + STUDY + text[end:])
    experiment, trials = load_plan(path)
    prepare_shards(experiment.data)
    uri = f"sqlite:///{tmp_path}/mlflow.db"
    rng = np.random.default_rng(1)
    _record(MlflowStore(uri), experiment, trials,
            corpus_from_manifest(read_manifest(experiment.data)),
            lambda t: law_loss(t.non_embedding_params, t.budget_flops, rng))
    capfd.readouterr()
    out = tmp_path / "fit"
    assert main(["fit", str(path), "--tracking-uri", uri, "--out", str(out), "--bootstrap", "40",
                 "--propose", "6e10", "--json"]) == 0
    captured = capfd.readouterr()  # file descriptors: nothing a library wrote is missed
    payload = json.loads(captured.out)
    assert "[quokka] 15 trials fitted" in captured.err
    assert payload["experiment"] == "json_fit" and payload["target_column"] == "final_loss"
    assert payload["trials"] == 15 and payload["report"] == str(out / "report.md")
    objective = payload["objectives"][LABEL]
    assert objective["runs"] == 15 and objective["objective"]["label"] == LABEL
    assert objective["suggestions"] is None

    # The same fit again, from the trial table the fit wrote: the JSON holds its values.
    table = pd.read_csv(out / "trials.csv")
    report = write_report(table, tmp_path / "again", title="again", n_bootstrap=40, seed=0)
    fits, skipped = report.fits[LABEL], report.skipped[LABEL]
    _check_isoflop(objective["laws"]["isoflop"], fits["isoflop"])
    # The smallest model repeats the tiny corpus at the largest budget: a data-constrained
    # law is fitted too (on the runs of more than one epoch and the rest).
    assert set(objective["laws"]) == {"isoflop", "parametric", "data_constrained"}
    assert objective["skipped"] == skipped and "lr law" in skipped
    parametric, fit = objective["laws"]["parametric"], fits["parametric"]
    for name in ("E", "A", "B", "alpha", "beta", "n_points"):
        _close(parametric[name], getattr(fit, name))
    for name, value in fits["data_constrained"].coefficients().items():
        _close(objective["laws"]["data_constrained"][name], value)
    for law in ("isoflop", "parametric"):
        held = fits[f"{law}_holdout"]
        assert objective["held_out"][law]["metrics"] == pytest.approx(held.metrics, rel=1e-12)
        assert objective["held_out"][law]["held_out"] == held.held_out
    # What the text output shows for the objective, line for line.
    assert objective["summary"][0] == f"{report.objectives[LABEL].title()}: 15 runs"
    assert any(line.startswith("IsoFLOP: N_opt = ") for line in objective["summary"])

    # The proposal is the one written into the proposed experiment file.
    proposal = objective["proposal"]
    (written,) = payload["written"]
    assert written["kind"] == "proposal"
    proposed, _ = load_plan(written["path"])
    prediction = proposed.prediction
    assert proposal["n_opt"] == prediction.n_opt and proposal["law"] == prediction.law
    assert proposal["final_loss"] == prediction.final_loss
    assert proposal["run"]["non_embedding_params"] == prediction.non_embedding_params
    assert proposal["extrapolation"] == pytest.approx(6e10 / 2e10)
