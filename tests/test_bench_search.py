"""`quokka bench search`'s accounting and planning, without Ray or training: the tokens each
sweep trained (runs stopped early count what they trained), the best loss (only runs that
trained to their end), the comparison per seed and its table, the sweeps it derives from one
study point, and the steps at which ASHA compares runs."""

from __future__ import annotations

import json

import pytest
from ray.tune.schedulers.async_hyperband import _Bracket

from quokka_ray.cli import main
from quokka_ray.commands.bench_search import (
    BenchSettings,
    SeedResult,
    SweepRecord,
    asha_rungs,
    bench_record,
    default_eval_every,
    log_spaced,
    plan_sweeps,
    results_from_record,
    run_records,
    table,
)
from quokka_ray.config import ConfigError
from quokka_ray.sweep.loader import load_plan

TRANSFER = "experiments/transfer_ar_dlm.py"
BATCH_TOKENS = 512


def row(name: str, lr: float, outcome: str, steps_trained: int, val_loss: float | None,
        steps: int = 100) -> dict:
    """A row as MlflowStore.trial_runs gives it: params as text, latest metrics as floats."""
    out = {"trial_name": name, "run_id": name, "outcome": outcome, "lr": str(lr),
           "steps": str(steps), "batch_tokens": str(BATCH_TOKENS),
           "tokens": float(steps_trained * BATCH_TOKENS) if steps_trained else float("nan")}
    if val_loss is not None:
        out["val_loss"] = val_loss
    return out


def sweep(name: str, rows: list[dict], seed: int = 0) -> SweepRecord:
    return SweepRecord(name, seed, run_records(rows))


def test_stopped_runs_count_their_tokens_but_not_their_loss():
    record = sweep("search", [
        row("a", 1e-2, "finished", 100, 3.00),
        row("b", 3e-2, "stopped_early", 11, 2.50),   # best loss at step 11: not a final loss
        row("c", 1e-3, "stopped_early", 33, 3.40),
        row("d", 1e-1, "diverged", 5, None),
        row("e", 2e-2, "finished", 100, 2.95),
        row("f", 5e-2, "failed", 0, None),           # logged no step: trained none recorded
    ])
    assert record.tokens == (100 + 11 + 33 + 5 + 100) * BATCH_TOKENS
    assert [r.lr for r in record.finished] == [1e-2, 2e-2]
    assert record.best.name == "e" and record.best.val_loss == 2.95
    assert record.outcomes() == {"finished": 2, "stopped_early": 2, "diverged": 1, "failed": 1}
    assert record.stopped_at() == {11: 1, 33: 1}
    # A run tagged finished that logged fewer steps than planned has no final loss.
    short = sweep("s", [row("g", 1e-2, "finished", 90, 2.0)])
    assert short.best is None and short.tokens == 90 * BATCH_TOKENS


def test_gap_share_goal_and_table():
    grid = sweep("grid", [row(f"g{i}", lr, "finished", 100, loss) for i, (lr, loss) in
                          enumerate([(1e-3, 3.2), (1e-2, 3.0), (1e-1, 3.1), (3e-1, 3.5)])])
    close = sweep("close", [row("a", 1.2e-2, "finished", 100, 3.02),
                            row("b", 1e-3, "stopped_early", 11, 3.6)])
    costly = sweep("costly", [row(f"c{i}", 1e-2, "finished", 100, 3.0) for i in range(2)])
    far = sweep("far", [row("a", 1e-3, "finished", 100, 3.2)])
    results = [SeedResult(0, grid, close), SeedResult(1, grid, costly), SeedResult(2, grid, far)]
    assert grid.tokens == 400 * BATCH_TOKENS
    assert results[0].gap == pytest.approx(3.02 / 3.0 - 1)
    assert results[0].token_share == pytest.approx(111 / 400)
    assert results[0].met()
    assert results[1].gap == 0 and results[1].token_share == 0.5 and not results[1].met()
    assert results[2].gap == pytest.approx(3.2 / 3.0 - 1) and not results[2].met()
    assert not SeedResult(3, grid, sweep("none", [row("x", 1e-2, "stopped_early", 11, 3)])).met()

    lines = table(results).splitlines()
    assert lines[2].split() == ["0", "0", "3.0000", "0.01", "3.0200", "0.012", "+0.67%", "56,832",
                                "27.8%", "1/1/0", "met"]
    assert lines[3].split()[-1] == "missed" and lines[4].split()[-1] == "missed"
    assert "met at 1 of 3 seeds" in lines[-1] and lines[-1].endswith("204,800 (seed 0)")

    settings = BenchSettings(seeds=[0, 1, 2], lr_range=(1e-3, 1e-1), grid_points=4,
                             search_trials=2, reduction_factor=3.0)
    record = json.loads(json.dumps(bench_record("point", settings, {"steps": 100}, results,
                                                "sqlite:///x.db")))
    assert record["met_at"] == 1 and record["seeds"][0]["search"]["stopped_at_steps"] == {"11": 1}
    assert table(results_from_record(record)) == table(results)


def test_asha_rungs_are_rays_milestones_on_evaluation_steps():
    for steps, rf in [(771, 3.0), (586, 3.0), (2578, 4.0), (100, 2.0)]:
        every = default_eval_every(steps, rf)
        rungs = asha_rungs(every, steps, rf)
        milestones = sorted(m for m, _ in _Bracket(every, steps, rf, 0)._rungs if m < steps)
        assert rungs == [round(m) for m in milestones]
        # Compared at evaluation steps, the first a fraction 1/rf^2 of the way; none stops a run
        # that had trained more than a 1/rf share of its steps.
        assert all(r % every == 0 for r in rungs) and rungs[0] == every
        assert rungs[0] >= steps / rf ** 2 and rungs[-1] <= steps / rf + every
    assert asha_rungs(86, 771, 3.0) == [86, 258]


def test_log_spaced():
    assert log_spaced(1e-3, 1e-1, 3) == [1e-3, 1e-2, 1e-1]
    values = log_spaced(1e-3, 1e-1, 12)
    assert len(values) == 12 and values[0] == 1e-3 and values[-1] == 1e-1
    assert all(b / a == pytest.approx(100 ** (1 / 11), rel=1e-3) for a, b in zip(values, values[1:], strict=False))


@pytest.mark.parametrize("grid_per_seed", [False, True])
def test_the_sweeps_train_the_study_points_model_and_tokens(grid_per_seed):
    experiment, trials = load_plan(TRANSFER)
    settings = BenchSettings(seeds=[0, 2], lr_range=(1e-3, 1e-1), grid_points=8,
                             search_trials=10, reduction_factor=3.0, trial=trials[3].name,
                             grid_per_seed=grid_per_seed)
    spec, plans, shape = plan_sweeps(TRANSFER, experiment, trials, settings)
    assert spec == trials[3]
    assert [p[0] for p in plans] == [0, 2]
    assert (plans[1][1] is not None) == grid_per_seed  # the first seed always has its grid
    steps = round(spec.tokens / (spec.hyperparameters.batch_sequences * experiment.data.seq_len))
    assert shape["steps"] == steps and shape["eval_every"] == default_eval_every(steps, 3.0)
    assert shape["asha_grace"] == shape["eval_every"] and shape["asha_max_t"] == steps
    for seed, own_grid, (search, search_trials) in plans:
        grid, grid_trials = own_grid or plans[0][1]
        assert grid.name == f"transfer_ar_dlm-tiny-lrgrid-s{grid.seed}"
        assert grid.seed == (seed if grid_per_seed else 0)
        assert search.name == f"transfer_ar_dlm-tiny-optuna-s{seed}" and search.seed == seed
        assert sorted(t.hyperparameters.lr for t in grid_trials) == shape["grid_lrs"]
        for t in grid_trials + search_trials:
            assert (t.model, t.tokens, t.objective) == (spec.model, spec.tokens, spec.objective)
            assert t.hyperparameters.batch_sequences == spec.hyperparameters.batch_sequences
        assert grid.search.algorithm == "grid" and grid.search.scheduler == "none"
        assert (search.search.algorithm, search.search.scheduler) == ("optuna", "asha")
        assert search.search.num_samples == 10 and len(search_trials) == 1
        space = search_trials[0].hyperparameters.lr
        assert (space.lower, space.upper) == (1e-3, 1e-1)
        assert grid.evaluation == search.evaluation
        assert grid.evaluation.eval_every_steps == shape["eval_every"]


def test_the_validation_set_size_reaches_every_sweep_and_names_them():
    experiment, trials = load_plan(TRANSFER)
    base = dict(seeds=[0, 1], lr_range=(1e-3, 1e-1), grid_points=3, search_trials=2,
                reduction_factor=3.0, grid_per_seed=True)
    default = experiment.data.validation_sequences
    planned = {}
    for count in (None, default, 512):
        _, plans, shape = plan_sweeps(TRANSFER, experiment, trials,
                                      BenchSettings(**base, validation_sequences=count))
        assert shape["validation_sequences"] == (count or default)
        sweeps = [p[1] for p in plans] + [p[2] for p in plans]
        for derived, derived_trials in sweeps:
            assert derived.data.validation_sequences == (count or default)
            assert all(t.settings["data"]["validation_sequences"] == (count or default)
                       for t in derived_trials)
        planned[count] = ({d.name for d, _ in sweeps},
                          {t.name for _, ts in sweeps for t in ts})
    # The experiment's own count is the default: the same sweeps, the same runs.
    assert planned[None] == planned[default]
    # Another count: other experiments and other runs, never the default's finished ones.
    names, runs = planned[512]
    assert names == {f"transfer_ar_dlm-tiny-{kind}-val512-s{seed}"
                     for kind in ("lrgrid", "optuna") for seed in (0, 1)}
    assert not names & planned[None][0] and not runs & planned[None][1]
    assert "; validation set: 512 sequences" in table([], 512)


@pytest.mark.parametrize("argv, message", [
    (["--lr-range", "1e-2", "1e-3"], "--lr-range: expected 0 < LOW < HIGH"),
    (["--grid-points", "1"], "--grid-points: expected at least 2"),
    (["--trial", "nope"], "--trial nope: no such trial"),
    (["--reduction-factor", "1"], "--reduction-factor: expected a factor > 1"),
    (["--seeds", "0"], "--seeds: expected at least 1"),
    (["--validation-sequences", "0"], "--validation-sequences: expected at least 1"),
    (["--validation-sequences", "-5"], "--validation-sequences: expected at least 1"),
])
def test_bad_settings_stop_before_anything_runs(argv, message, capsys, tmp_path):
    scratch = tmp_path / "scratch"
    assert main(["bench", "search", TRANSFER, "--scratch", str(scratch), *argv]) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and message in err
    assert not scratch.exists()


def test_a_ladder_trial_is_refused():
    experiment, trials = load_plan("experiments/data_constrained.py")
    with pytest.raises(ConfigError, match="warmup-stable-decay ladder"):
        plan_sweeps("x.py", experiment, trials, BenchSettings(
            seeds=[0], lr_range=(1e-3, 1e-2), grid_points=2, search_trials=2,
            reduction_factor=3.0))
