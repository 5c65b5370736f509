"""Distributed checkpoints: model and optimizer through torch.distributed.checkpoint (each
worker writes its shards; a resize reshards on load), plus a small JSON train state.

Every worker must call `save` and `load`: both are collectives."""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, field
from pathlib import Path

import torch

# torch.distributed.checkpoint is imported by each function, not with the module: its import
# (DTensor, sympy: about 0.8 s) would otherwise delay a single-worker run's first step.

TRAIN_STATE = "train_state.json"


@dataclass
class TrainState:
    step: int = 0
    """Optimizer steps completed."""
    loss_history: list[float] = field(default_factory=list)
    """Training loss at every step so far (kept for the smoothed final loss)."""


def save(folder: Path, model: torch.nn.Module, optimizer: torch.optim.Optimizer,
         state: TrainState, rank: int) -> None:
    import torch.distributed.checkpoint as dcp
    from torch.distributed.checkpoint.state_dict import get_state_dict

    model_state, optim_state = get_state_dict(model, optimizer)
    dcp.save({"model": model_state, "optim": optim_state}, checkpoint_id=str(folder))
    if rank == 0:
        (folder / TRAIN_STATE).write_text(json.dumps(asdict(state)))


def load_model(folder: Path, model: torch.nn.Module) -> None:
    """The model's weights alone (for sampling): DCP reads only the keys asked for."""
    import torch.distributed.checkpoint as dcp
    from torch.distributed.checkpoint.state_dict import get_model_state_dict, set_model_state_dict

    model_state = get_model_state_dict(model)
    dcp.load({"model": model_state}, checkpoint_id=str(folder))
    set_model_state_dict(model, model_state)


def load(folder: Path, model: torch.nn.Module, optimizer: torch.optim.Optimizer) -> TrainState:
    import torch.distributed.checkpoint as dcp
    from torch.distributed.checkpoint.state_dict import get_state_dict, set_state_dict

    model_state, optim_state = get_state_dict(model, optimizer)
    state_dict = {"model": model_state, "optim": optim_state}
    dcp.load(state_dict, checkpoint_id=str(folder))
    set_state_dict(model, optimizer, model_state_dict=state_dict["model"],
                   optim_state_dict=state_dict["optim"])
    return TrainState(**json.loads((folder / TRAIN_STATE).read_text()))
