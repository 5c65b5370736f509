"""Warmup-stable-decay ladders under Ray Train: the stable phase is trained once, each decay
branches from its checkpoint, and every branch ends exactly where the same run trained from
scratch ends."""

from __future__ import annotations

import os
import signal
import threading
import time
from dataclasses import replace
from pathlib import Path

import pytest

from quokka_ray.config import ConfigError
from quokka_ray.diffusion import ObjectiveConfig
from quokka_ray.sweep.grid import train_config
from quokka_ray.sweep.ladder import ladder, run_ladder
from quokka_ray.sweep.loader import load_plan
from quokka_ray.sweep.single_run import run_single
from quokka_ray.train.ladder_worker import checkpoint_dir_name, decay_name
from quokka_ray.train.lr_schedule import lr_at
from tests.conftest import EXPERIMENTS
from tests.test_faults import train_worker_pids


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


@pytest.mark.cluster  # three Ray Train runs and a kill: longer than `make test` affords
def test_branches_end_where_runs_from_scratch_end_after_a_killed_worker(
        ray_session, tmp_path, data_cache, monkeypatch):
    """The ladder trains as a sweep trains it, as one Ray Train run; its worker is killed
    during the longest decay, and Ray Train starts it again from that decay's checkpoint, not
    from its branch point."""
    monkeypatch.setenv("QUOKKA_TEST_CACHE", str(data_cache))
    experiment, (spec,) = load_plan(EXPERIMENTS / "tiny_kill.py")
    cfg = train_config(spec, experiment)
    # Checkpoints every 10 steps and where the decays branch (45 and 113); evaluations every 3
    # steps and at each run's end, so at steps that differ between the ladder and the runs from
    # scratch: neither may change what is trained.
    base = replace(cfg, hyperparameters=replace(
        cfg.hyperparameters, warmup_fraction=0.1, decay_fraction=0.25, min_lr_ratio=0.0),
        checkpoint_every_steps=10, evaluation=replace(cfg.evaluation, eval_every_steps=3))
    plan = ladder(base, [60, 150])
    longest = plan.branches[-1]
    assert plan.branch_point(longest) == 113
    storage = tmp_path / "ladder"
    killed: list[int] = []
    watcher = threading.Thread(target=_kill_when, args=(
        storage, checkpoint_dir_name(decay_name(150), 130), killed), daemon=True)
    watcher.start()
    result = run_ladder(plan, storage_path=str(storage), name="ladder")
    watcher.join()
    assert killed, "the worker was never killed"

    def trained(rows) -> list[int]:
        return [r["step"] for r in rows if "tokens_per_s" in r]

    # What ended before the kill is not trained again.
    assert trained(result.stable_rows) == list(range(1, plan.stable.total_steps + 1))
    assert trained(result.branch_rows[0]) == list(range(46, 61))
    # The decay the kill interrupted trains again from its latest committed checkpoint: at
    # step 120 or 130 (the kill came once the folder of 130 appeared, maybe before Ray Train
    # committed it).
    again = trained(result.branch_rows[1])
    restart = next((i for i in range(1, len(again)) if again[i] <= again[i - 1]), len(again))
    assert again[:restart] == list(range(114, again[restart - 1] + 1))
    assert again[restart - 1] >= 130 and again[-1] == 150
    if again[restart:]:
        assert again[restart:] in (list(range(121, 151)), list(range(131, 151)))
    for branch, rows in zip(plan.branches, result.branch_rows, strict=True):
        scratch = run_single(branch, workers=1, use_gpu=False, cpus_per_worker=1,
                             storage_path=str(tmp_path / "scratch"),
                             name=f"scratch-{branch.total_steps}")
        scratch_loss = {r["step"]: r["train_loss"] for r in scratch if "tokens_per_s" in r}
        for row in rows:
            if "tokens_per_s" in row:
                assert row["train_loss"] == pytest.approx(scratch_loss[row["step"]], rel=1e-6)
        end, scratch_end = rows[-1], scratch[-1]
        assert end["step"] == scratch_end["step"] == branch.total_steps
        for metric in ("final_loss", "val_loss"):
            assert end[metric] == pytest.approx(scratch_end[metric], rel=1e-6), metric


def _kill_when(storage: Path, checkpoint: str, killed: list[int], deadline_s: float = 300):
    """SIGKILL the Train worker once a checkpoint folder named `checkpoint` is in `storage`."""
    end = time.monotonic() + deadline_s
    while time.monotonic() < end:
        if any(storage.glob(f"*/{checkpoint}")):
            for pid in train_worker_pids():
                os.kill(pid, signal.SIGKILL)
                killed.append(pid)
            return
        time.sleep(0.02)
