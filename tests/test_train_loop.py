"""The training loop without Ray: the loss falls, a resumed run continues the same trajectory,
and the trajectory does not depend on the number of workers (FSDP2 on gloo via torchrun)."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from dataclasses import replace
from pathlib import Path

import pytest
import torch

from quokka_ray.data import prepare_shards
from quokka_ray.train.loop import train
from tests.conftest import REPO
from tests.scripts.train_ranks import tiny_config

CPU = torch.device("cpu")


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
def test_two_fsdp_workers_follow_one_workers_trajectory(tmp_path, data_cache):
    script = REPO / "tests" / "scripts" / "train_ranks.py"
    prepare_shards(tiny_config(str(data_cache)).data)
    results = {}
    for workers in (1, 2):
        out = tmp_path / f"w{workers}.json"
        subprocess.run([sys.executable, "-m", "torch.distributed.run", "--standalone",
                        f"--nproc-per-node={workers}", str(script), str(out), str(data_cache)],
                       cwd=REPO, check=True, timeout=300, capture_output=True)
        results[workers] = json.loads(Path(out).read_text())[-1]
    for key in ("train_loss", "val_loss", "final_loss"):
        assert results[2][key] == pytest.approx(results[1][key], rel=1e-5), key
