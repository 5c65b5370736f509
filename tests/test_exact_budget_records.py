"""Each trial's MLflow run records its exact training FLOPs per token and how its study's
budgets count FLOPs, and the fit's trial table reads the FLOPs per token, so that a law of
exact budgets can turn a compute-optimal N into D = C / F(N). No training here."""

from __future__ import annotations

import dataclasses

import pytest

from quokka_ray.analysis import trial_table
from quokka_ray.sweep import FixedStudy, load_experiment, plan_trials
from quokka_ray.sweep.checks import Corpus
from quokka_ray.sweep.grid import train_config
from quokka_ray.sweep.stored_plan import plan_record
from quokka_ray.sweep.trial import SweepContext, trial_params
from quokka_ray.tracking import MlflowRunTracker, MlflowStore
from tests.conftest import EXPERIMENTS


def _record(store: MlflowStore, experiment) -> list:
    trials = plan_trials(experiment)
    parent = store.sweep_run(experiment.name, plan_record(trials), {"trials": len(trials)})
    context = SweepContext(experiment=experiment, trials={t.name: t for t in trials},
                           tracking_uri=store.tracking_uri, storage_path="unused",
                           parent_run_id=parent, git_commit="test",
                           corpus=Corpus(train_tokens=10**9, bytes_per_token=1.0))
    for spec in trials:
        train = train_config(spec, experiment)
        run_id = store.trial_run(experiment.name, parent, spec.name,
                                 trial_params(spec, train, context))
        # The losses a finished run carries (the trial table reads them).
        tracker = MlflowRunTracker(store.tracking_uri, run_id)
        tracker.log_metrics({"final_loss": 3.0, "val_loss": 3.0}, step=train.total_steps)
        tracker.close()
    return trials


def test_runs_record_the_flop_count_and_the_fit_table_reads_exact_flops_per_token(tmp_path):
    store = MlflowStore(f"sqlite:///{tmp_path}/mlflow.db")
    base = load_experiment(EXPERIMENTS / "tiny_isoflop.py")
    studies = {
        "exact": dataclasses.replace(base.study, budget_flops_rule="exact"),
        "6N": base.study,
        "": FixedStudy(model_sizes=[12_000], tokens=[25_600]),  # no budget, no rule
    }
    for rule, study in studies.items():
        experiment = dataclasses.replace(base, study=study, name=f"records-{rule or 'fixed'}")
        trials = _record(store, experiment)
        runs = store.trial_runs(experiment.name)
        assert set(runs["budget_flops_rule"].fillna("")) == {rule}
        table = trial_table(runs).set_index("trial_name")
        for spec in trials:
            row = table.loc[spec.name]
            assert row["exact_flops_per_token"] == pytest.approx(spec.exact_flops_per_token,
                                                                 rel=1e-12)
            if rule == "exact":
                # The budget is the exact FLOPs of the run: C = F(N) D within the tolerance.
                assert abs(row["exact_flops_per_token"] * row["tokens"] - row["budget_flops"]) \
                    <= study.budget_tolerance * row["budget_flops"]
            elif rule == "6N":
                assert abs(row["flops"] - row["budget_flops"]) \
                    <= study.budget_tolerance * row["budget_flops"]
