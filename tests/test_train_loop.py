"""The training loop without Ray: the loss falls, a resumed run continues the same trajectory,
and the trajectory does not depend on the number of workers (FSDP2 on gloo via torchrun; one
worker trains without FSDP, alone or in a process group of one as Ray Train runs it)."""

from __future__ import annotations

import contextlib
import json
import shutil
import socket
import subprocess
import sys
from dataclasses import replace
from pathlib import Path

import pytest
import torch
import torch.distributed as dist

from quokka_ray.data import prepare_shards
from quokka_ray.model import Transformer
from quokka_ray.train import EvaluationConfig, Hyperparameters, checkpoint, loop
from quokka_ray.train.fsdp import is_sharded, shard_model
from quokka_ray.train.loop import build_optimizer, train
from tests.conftest import REPO
from tests.scripts.train_ranks import tiny_config

CPU = torch.device("cpu")
SCRIPT = REPO / "tests" / "scripts" / "train_ranks.py"


@contextlib.contextmanager
def one_process_group():
    """A gloo process group of this process alone: what Ray Train gives a one-worker run."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    dist.init_process_group("gloo", init_method=f"tcp://127.0.0.1:{port}", rank=0,
                            world_size=1)
    try:
        yield
    finally:
        dist.destroy_process_group()


def _torchrun(workers: int, out: Path, cache: Path, *args) -> dict:
    """The last report of a run of train_ranks.py on `workers` processes."""
    subprocess.run([sys.executable, "-m", "torch.distributed.run", "--standalone",
                    f"--nproc-per-node={workers}", str(SCRIPT), str(out), str(cache),
                    *map(str, args)], cwd=REPO, check=True, timeout=300, capture_output=True)
    return json.loads(out.read_text())[-1]


class Interrupted(Exception):
    pass


def test_resume_continues_the_same_trajectory(tmp_path, data_cache):
    cfg = replace(tiny_config(str(data_cache), steps=12), checkpoint_every_steps=6)
    prepare_shards(cfg.data)
    whole: list[dict] = []
    train(cfg, rank=0, world_size=1, device=CPU, report=lambda m, f: whole.append(m))

    saved = tmp_path / "checkpoint"

    def stop_after_first_checkpoint(metrics, folder):
        shutil.copytree(folder, saved)
        raise Interrupted

    with pytest.raises(Interrupted):
        train(cfg, rank=0, world_size=1, device=CPU, report=stop_after_first_checkpoint)
    resumed: list[dict] = []
    train(cfg, rank=0, world_size=1, device=CPU, report=lambda m, f: resumed.append(m),
          resume_from=saved)
    assert resumed[-1]["step"] == whole[-1]["step"] == 12
    for key in ("train_loss", "val_loss", "final_loss"):
        assert resumed[-1][key] == pytest.approx(whole[-1][key], rel=1e-6), key
    assert whole[-1]["val_loss"] < whole[0]["val_loss"]  # it learned something


@pytest.mark.slow
def test_two_fsdp_workers_follow_one_workers_trajectory_and_resume_its_checkpoint(
        tmp_path, data_cache):
    cfg = replace(tiny_config(str(data_cache)), checkpoint_every_steps=6)  # train_ranks' run
    prepare_shards(cfg.data)
    saved = tmp_path / "one-worker-step-6"

    def keep_first_checkpoint(metrics, folder):
        in_group.append(metrics)
        if folder is not None and not saved.exists():
            shutil.copytree(folder, saved)

    in_group: list[dict] = []
    with one_process_group():
        train(cfg, rank=0, world_size=1, device=CPU, report=keep_first_checkpoint)
    results = {
        "one worker alone": _torchrun(1, tmp_path / "w1.json", data_cache),
        "one worker in a process group of one": in_group[-1],
        "two workers": _torchrun(2, tmp_path / "w2.json", data_cache),
        "two workers from one worker's checkpoint": _torchrun(
            2, tmp_path / "w2-resumed.json", data_cache, "--checkpoint-every", 6,
            "--resume", saved),
    }
    reference = results["one worker alone"]
    assert reference["step"] == 12
    for name, result in results.items():
        assert result["step"] == 12, name
        for key in ("train_loss", "val_loss", "final_loss"):
            assert result[key] == pytest.approx(reference[key], rel=1e-5), (name, key)


def test_one_worker_loads_a_checkpoint_of_fsdp_workers(tmp_path, one_torch_thread):
    """Checkpoints written through FSDP2 (by runs of several workers, and by one-worker runs
    before those trained without it) load into a single worker's plain model."""
    model_cfg = tiny_config(str(tmp_path)).model
    with one_process_group():
        torch.manual_seed(0)
        sharded = shard_model(Transformer(model_cfg), CPU, shard=True)
        assert is_sharded(sharded)
        optimizer = build_optimizer(sharded, Hyperparameters(lr=1e-2))
        sharded(torch.randint(0, 256, (2, 16))).square().mean().backward()
        optimizer.step()
        checkpoint.save(tmp_path, sharded, optimizer, checkpoint.TrainState(step=1), rank=0)
        expected = {k: v.full_tensor() for k, v in sharded.state_dict().items()}
        expected_moments = [optimizer.state[p]["exp_avg_sq"].full_tensor()
                            for p in sharded.parameters()]
    torch.manual_seed(1)  # other initial weights: the checkpoint must replace them
    plain = shard_model(Transformer(model_cfg), CPU, shard=False)
    plain_optimizer = build_optimizer(plain, Hyperparameters(lr=1e-2))
    state = checkpoint.load(tmp_path, plain, plain_optimizer)
    assert state.step == 1 and not is_sharded(plain)
    for key, value in plain.state_dict().items():
        assert torch.equal(value, expected[key]), key
    for param, moment in zip(plain.parameters(), expected_moments, strict=True):
        assert torch.equal(plain_optimizer.state[param]["exp_avg_sq"], moment)


def test_validation_draws_its_noise_from_the_evaluation_seed(data_cache, monkeypatch):
    cfg = replace(tiny_config(str(data_cache), steps=2), seed=3,
                  evaluation=EvaluationConfig(seed=11, smoothing_window_steps=5,
                                              validation_samples_per_sequence=2))
    prepare_shards(cfg.data)
    seeds: list[int] = []

    def validation_loss(*args, seed, **kwargs):
        seeds.append(seed)
        return real(*args, seed=seed, **kwargs)

    real = loop.validation_loss
    monkeypatch.setattr(loop, "validation_loss", validation_loss)
    train(cfg, rank=0, world_size=1, device=CPU, report=lambda m, f: None)
    assert seeds == [11]
