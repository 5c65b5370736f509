"""The training loop on a GPU under an NCCL process group (the one Ray Train gives GPU
workers): one worker trains its model unwrapped under bf16 autocast (FSDP2 shards from two
workers on), fused AdamW, a checkpoint and a resume. Skipped without CUDA."""

from __future__ import annotations

import json
import math
import subprocess
import sys

import pytest
import torch

from quokka_ray.data import prepare_shards
from tests.conftest import REPO
from tests.scripts.train_ranks import tiny_config

pytestmark = [
    pytest.mark.gpu,
    pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA GPU"),
]
SCRIPT = REPO / "tests" / "scripts" / "train_ranks.py"


def _torchrun(*args) -> None:
    subprocess.run([sys.executable, "-m", "torch.distributed.run", "--standalone",
                    "--nproc-per-node=1", str(SCRIPT), *map(str, args), "--nccl"],
                   cwd=REPO, check=True, timeout=600)


def test_nccl_loop_checkpoints_and_resumes(tmp_path, data_cache):
    prepare_shards(tiny_config(str(data_cache)).data)
    whole, resumed, saved = tmp_path / "whole.json", tmp_path / "resumed.json", tmp_path / "ckpt"
    _torchrun(whole, data_cache, "--steps", 50, "--checkpoint-every", 25, "--keep-checkpoint",
              saved)
    _torchrun(resumed, data_cache, "--steps", 50, "--checkpoint-every", 25, "--resume", saved)
    first, second = json.loads(whole.read_text()), json.loads(resumed.read_text())
    assert first[-1]["step"] == second[-1]["step"] == 50
    # It learned: far below the loss of uniform predictions over the 257 byte-level tokens.
    assert first[-1]["val_loss"] < 0.8 * math.log(257)
    # bf16 compute: a resume follows the same trajectory up to rounding.
    assert second[-1]["train_loss"] == pytest.approx(first[-1]["train_loss"], rel=2e-2)
    assert second[-1]["val_loss"] == pytest.approx(first[-1]["val_loss"], rel=2e-2)
