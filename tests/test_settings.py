"""Experiment files that take settings: `--set NAME=VALUE` fills the keyword arguments of the
file's `make_experiment`, the settings are stored with the sweep's plan (so a sweep continued
with other settings is refused), and `quokka fit` fits the runs of the settings it is given.
No training here."""

from __future__ import annotations

import json

import pytest

from quokka_ray.cli import main
from quokka_ray.config import ConfigError
from quokka_ray.sweep import load_plan, train_config
from quokka_ray.sweep.checks import Corpus
from quokka_ray.sweep.loader import load_experiment_file
from quokka_ray.sweep.stored_plan import check_unchanged, plan_record, write_plan
from quokka_ray.sweep.trial import SweepContext, trial_params
from quokka_ray.tracking import MlflowRunTracker, MlflowStore
from tests.conftest import REPO, run_cli_cases

ISOFLOP_DLM = REPO / "experiments" / "isoflop_dlm.py"
PAPER_BUDGETS = [3e18, 6e18, 1e19, 3e19, 6e19, 1e20, 3e20, 6e20, 1e21]

# One experiment name for both scales, so that a changed setting meets the stored sweep; the
# annotations are strings here (postponed evaluation), as in any file that imports annotations.
SCALED = """\
from __future__ import annotations

import os
from typing import Literal

from quokka_ray.sweep import DataConfig, Experiment, Hyperparameters, IsoFlopStudy, Resources

def make_experiment(scale: Literal["small", "large"] = "small", workers: int = 1) -> Experiment:
    budgets = [2e9, 6e9] if scale == "small" else [2e10, 6e10]
    return Experiment(
        study=IsoFlopStudy(budgets_flops=budgets, model_sizes=[12_000, 55_000, 100_000],
                           min_steps=3, budget_tolerance=0.05),
        hyperparameters=Hyperparameters(lr=3e-3, batch_sequences=8),
        data=DataConfig(seq_len=32, max_corpus_bytes=200_000, validation_sequences=16,
                        cache_dir=os.environ.get("QUOKKA_TEST_CACHE", ".quokka_cache")),
        resources=Resources(workers_per_trial=workers),
        name="scaled",
    )
"""


@pytest.fixture
def scaled(tmp_path):
    path = tmp_path / "scaled.py"
    path.write_text(SCALED)
    return path


def test_the_paper_scale_is_another_plan_than_the_tiny_one():
    tiny, tiny_trials = load_plan(ISOFLOP_DLM)
    explicit, explicit_trials = load_plan(ISOFLOP_DLM, {"scale": "tiny"})
    paper, paper_trials = load_plan(ISOFLOP_DLM, {"scale": "paper"})
    assert [t.name for t in tiny_trials] == [t.name for t in explicit_trials]  # the default
    assert tiny.name != paper.name  # each scale is its own MLflow and Tune experiment
    assert not {t.name for t in tiny_trials} & {t.name for t in paper_trials}
    assert sorted({t.budget_flops for t in paper_trials}) == PAPER_BUDGETS
    assert paper.data.tokenizer == "gpt2" and paper.data.seq_len == 2048
    assert tiny.data.source == "stdlib" and not tiny.resources.use_gpu
    assert max(t.non_embedding_params for t in paper_trials) > 1e9
    assert max(t.non_embedding_params for t in tiny_trials) < 1e5
    # Each budget keeps its own window of sizes: 1 to 1000 tokens per parameter.
    for spec in paper_trials:
        assert 1 <= spec.tokens / spec.non_embedding_params <= 1000


def test_plan_json_names_the_settings(capsys):
    assert main(["plan", str(ISOFLOP_DLM), "--set", "scale=paper", "--json"]) == 0
    plan = json.loads(capsys.readouterr().out)
    assert plan["experiment"] == "isoflop_dlm-paper"
    assert plan["file_settings"] == {"scale": "paper"}
    assert sorted({row["budget_flops"] for row in plan["trials"]}) == PAPER_BUDGETS


def test_settings_are_read_by_their_annotations(scaled):
    experiment, settings = load_experiment_file(scaled, {"workers": "2"})
    assert settings == {"scale": "small", "workers": 2}
    assert experiment.resources.workers_per_trial == 2
    with pytest.raises(ConfigError, match=r"scaled.py: --set workers=two: expected an integer"):
        load_experiment_file(scaled, {"workers": "two"})


def test_a_changed_setting_is_refused_even_where_the_trials_are_the_same(scaled):
    _, one = load_plan(scaled)
    _, two = load_plan(scaled, {"workers": "2"})
    one_settings = load_experiment_file(scaled)[1]
    two_settings = load_experiment_file(scaled, {"workers": "2"})[1]
    assert [t.name for t in one] == [t.name for t in two]  # workers do not name a trial
    stored = plan_record(one, one_settings)
    check_unchanged(stored, plan_record(one, one_settings), experiment="scaled", where="here")
    with pytest.raises(ConfigError, match="--set workers: 1 -> 2"):
        check_unchanged(stored, plan_record(two, two_settings), experiment="scaled", where="here")


def test_run_with_other_settings_under_the_same_name_stops_before_anything_starts(
        tmp_path, scaled, data_cache):
    storage = tmp_path / "runs"
    experiment, small = load_plan(scaled)
    write_plan(f"{storage}/tune/{experiment.name}",
               plan_record(small, load_experiment_file(scaled)[1]))
    before = sorted(p.name for p in tmp_path.iterdir())
    (result,) = run_cli_cases([(["run", "scaled.py", "--set", "scale=large", "--tracking-uri",
                                 f"sqlite:///{tmp_path}/mlflow.db", "--storage-path",
                                 str(storage)], tmp_path)],
                              tmp_path, env={"QUOKKA_TEST_CACHE": str(data_cache)})
    lines = [line for line in result["stderr"].splitlines() if line.strip()]
    assert result["code"] == 2 and len(lines) == 1, result["stderr"]
    assert "experiment 'scaled' already ran with other settings" in lines[0]
    assert '--set scale: "small" -> "large"' in lines[0]
    assert not result["ray"]
    assert not (tmp_path / "mlflow.db").exists()
    assert sorted(p.name for p in tmp_path.iterdir() if not p.name.startswith("cli-")) == before


def _record(store: MlflowStore, path, settings: dict, loss) -> list[str]:
    """Trial runs of the plan of `path` at `settings`, recorded as a finished sweep records
    them, with losses from `loss(spec)`."""
    experiment, file_settings = load_experiment_file(path, settings)
    _, trials = load_plan(path, settings)
    parent = store.sweep_run(experiment.name, plan_record(trials, file_settings), {})
    context = SweepContext(experiment=experiment, trials={t.name: t for t in trials},
                           tracking_uri=store.tracking_uri, storage_path="unused",
                           parent_run_id=parent, git_commit="test",
                           corpus=Corpus(train_tokens=10**9, bytes_per_token=1.0))
    for spec in trials:
        train = train_config(spec, experiment)
        run_id = store.trial_run(experiment.name, parent, spec.name,
                                 trial_params(spec, train, context))
        tracker = MlflowRunTracker(store.tracking_uri, run_id)
        tracker.log_metrics({"final_loss": loss(spec), "val_loss": loss(spec)},
                            step=train.total_steps)
        tracker.flush()
        store.end_run(run_id, "FINISHED", outcome="finished")
    store.end_run(parent, "FINISHED")
    return [t.name for t in trials]


def test_fit_fits_the_runs_of_the_settings_it_is_given(tmp_path, scaled, capsys, monkeypatch):
    import math

    monkeypatch.chdir(tmp_path)
    uri = f"sqlite:///{tmp_path}/mlflow.db"
    store = MlflowStore(uri)

    def loss(spec):  # a parabola in log N around N_opt = 3e4 (C / 6e9)^0.5
        n_opt = 3e4 * (spec.budget_flops / 6e9) ** 0.5
        return 3.0 + 0.5 * math.log(spec.non_embedding_params / n_opt) ** 2

    small = _record(store, scaled, {}, loss)
    large = _record(store, scaled, {"scale": "large"}, loss)
    for settings, names in ((["--set", "scale=large"], large), ([], small)):
        out = tmp_path / f"fit{len(settings)}"
        assert main(["fit", str(scaled), *settings, "--tracking-uri", uri, "--out", str(out),
                     "--law", "isoflop", "--bootstrap", "0"]) == 0
        assert f"[quokka] {len(names)} trials fitted" in capsys.readouterr().out
        fitted = (out / "trials.csv").read_text()
        assert all(name in fitted for name in names)
        assert not any(name in fitted for name in (small if names is large else large))
    # An experiment name has no settings to give.
    assert main(["fit", "scaled", "--set", "scale=large", "--tracking-uri", uri]) == 2
    assert "settings are for an experiment file" in capsys.readouterr().err
