"""`quokka sample`: load a trial's latest checkpoint into one process and generate text."""

from __future__ import annotations

from pathlib import Path

import torch

from quokka_ray.data.tokenizers import get_tokenizer
from quokka_ray.diffusion import get_schedule, sample_ar, sample_dlm
from quokka_ray.model import Transformer
from quokka_ray.sweep.driver import resolve_storage_path
from quokka_ray.sweep.grid import TrialSpec
from quokka_ray.sweep.spec import Experiment
from quokka_ray.train import checkpoint


def latest_checkpoint(storage_path: str, trial_name: str) -> Path:
    folder = Path(storage_path) / "train" / trial_name
    steps = sorted(folder.glob("step_*"))
    if not steps:
        raise LookupError(f"no checkpoint of trial {trial_name!r} under {folder}")
    return steps[-1]


def sample_from_checkpoint(experiment: Experiment, trials: list[TrialSpec], trial_name: str, *,
                           storage_path: str | None, num_samples: int, steps: int,
                           seed: int) -> list[str]:
    specs = {t.name: t for t in trials}
    # A searched trial's runs are named <trial>-<digest of the sampled values>.
    spec = specs.get(trial_name) or specs.get(trial_name.rsplit("-", 1)[0])
    if spec is None:
        raise LookupError(f"no trial {trial_name!r} in {experiment.name} (see quokka plan)")
    folder = latest_checkpoint(resolve_storage_path(storage_path or experiment.storage_path),
                               trial_name)
    model = Transformer(spec.model)
    checkpoint.load_model(folder, model)
    model.eval()
    tokenizer = get_tokenizer(experiment.data.tokenizer)
    generator = torch.Generator().manual_seed(seed)
    seq_len = experiment.data.seq_len
    with torch.no_grad():
        if spec.kind == "ar":
            tokens = sample_ar(model, num_samples, seq_len, generator)
        else:
            tokens = sample_dlm(model, num_samples, seq_len, steps, tokenizer.mask_token_id,
                                get_schedule(spec.objective.schedule), generator)
    return [tokenizer.decode(row.tolist()) for row in tokens]
