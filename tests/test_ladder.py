"""Warmup-stable-decay ladders under Ray Train: the stable phase is trained once, each decay
branches from its checkpoint, and every branch ends exactly where the same run trained from
scratch ends."""

from __future__ import annotations

from dataclasses import replace

import pytest

from quokka_ray.config import ConfigError
from quokka_ray.diffusion import ObjectiveConfig
from quokka_ray.sweep.grid import train_config
from quokka_ray.sweep.ladder import ladder, run_ladder
from quokka_ray.sweep.loader import load_plan
from quokka_ray.sweep.single_run import train_run
from quokka_ray.train.lr_schedule import lr_at
from tests.conftest import EXPERIMENTS

LENGTHS = [16, 28]


def _base(monkeypatch, data_cache, tmp_path):
    monkeypatch.setenv("QUOKKA_TEST_CACHE", str(data_cache))
    experiment, trials = load_plan(EXPERIMENTS / "tiny_job.py")
    cfg = train_config(trials[0], experiment)
    hyper = replace(cfg.hyperparameters, warmup_fraction=0.25, decay_fraction=0.25,
                    min_lr_ratio=0.0)
    # Checkpoints only where the ladder asks for them; evaluations every 3 steps and at each
    # run's end, so at steps that differ between the stable phase and the runs from scratch:
    # neither may change what is trained.
    return replace(cfg, hyperparameters=hyper, checkpoint_every_steps=1000,
                   evaluation=replace(cfg.evaluation, eval_every_steps=3))


def test_a_ladder_shares_its_warmup_and_stable_rate():
    experiment, trials = load_plan(EXPERIMENTS / "tiny_job.py")
    cfg = train_config(trials[0], experiment)
    plan = ladder(replace(cfg, hyperparameters=replace(
        cfg.hyperparameters, warmup_fraction=0.25, decay_fraction=0.25)), [40, 16, 28])
    assert [b.total_steps for b in plan.branches] == [16, 28, 40]
    assert [plan.branch_point(b) for b in plan.branches] == [12, 21, 30]
    assert plan.stable.total_steps == 30 and plan.stable.checkpoint_at_steps == (12, 21, 30)
    assert plan.steps_trained == 30 + 4 + 7 + 10 < plan.steps_from_scratch == 84
    for branch in plan.branches:
        for step in range(plan.branch_point(branch)):
            assert lr_at(step, branch.total_steps, branch.hyperparameters) == lr_at(
                step, plan.stable.total_steps, plan.stable.hyperparameters)
    with pytest.raises(ConfigError, match="curriculum"):
        ladder(replace(cfg, objective=ObjectiveConfig(timesteps="curriculum")), [16, 28])
    with pytest.raises(ConfigError, match="decay_fraction"):
        ladder(replace(cfg, hyperparameters=replace(
            cfg.hyperparameters, warmup_fraction=0.5, decay_fraction=0.9)), [16, 28])


@pytest.mark.cluster  # five Ray Train runs: longer than `make test` affords
def test_branches_end_where_runs_from_scratch_end(ray_session, tmp_path, data_cache,
                                                  monkeypatch):
    plan = ladder(_base(monkeypatch, data_cache, tmp_path), LENGTHS)
    result = run_ladder(plan, storage_path=str(tmp_path / "ladder"), name="ladder")
    trained = [r["step"] for r in result.stable_rows if "train_loss" in r and "tokens_per_s" in r]
    assert trained == list(range(1, plan.stable.total_steps + 1))
    for branch, rows in zip(plan.branches, result.branch_rows, strict=True):
        point = plan.branch_point(branch)
        steps = [r["step"] for r in rows if "tokens_per_s" in r]
        assert steps == list(range(point + 1, branch.total_steps + 1))  # the decay alone
        scratch = train_run(branch, workers=1, use_gpu=False, cpus_per_worker=1,
                            storage_path=str(tmp_path / "scratch"),
                            name=f"scratch-{branch.total_steps}").rows
        scratch_loss = {r["step"]: r["train_loss"] for r in scratch if "tokens_per_s" in r}
        for row in rows:
            if "tokens_per_s" in row:
                assert row["train_loss"] == pytest.approx(scratch_loss[row["step"]], rel=1e-6)
        end, scratch_end = rows[-1], scratch[-1]
        assert end["step"] == scratch_end["step"] == branch.total_steps
        for metric in ("final_loss", "val_loss"):
            assert end[metric] == pytest.approx(scratch_end[metric], rel=1e-6), metric
