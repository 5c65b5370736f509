"""What a run optimises: the objective's options, as one frozen, validated dataclass."""

from __future__ import annotations

import re
import typing
from dataclasses import dataclass
from typing import Literal

from quokka_ray.config import ConfigError, check_types, require

DEFAULT_T_MIN = 1e-3
"""Lower end of t. w(t) ~ 1/t makes the loss estimator's variance grow like log(1/t_min);
leaving out [0, t_min) changes the expected loss by about t_min times the per-token
cross-entropy with one token masked (~0.1%), far below the run-to-run noise."""

VALID_SCHEDULES = "'linear', 'polyK' for an integer K >= 1 (e.g. 'poly2', 'poly3'), 'cosine'"


def schedule_power(name: str) -> int | None:
    """The power K of a polynomial schedule ('linear' is K = 1), None for 'cosine'; any other
    name raises ValueError. Without torch, so that configs validate where torch is not loaded."""
    if name == "linear":
        return 1
    if name == "cosine":
        return None
    match = re.fullmatch(r"poly([1-9][0-9]*)", name)
    if match:
        return int(match.group(1))
    raise ValueError(f"unknown schedule {name!r}; valid: {VALID_SCHEDULES}")

Kind = Literal["dlm", "ar"]
Kernel = Literal["masked", "uniform"]
Loss = Literal["elbo", "maskgit", "elbo_realized_masked"]
Timesteps = Literal["uniform", "antithetic", "curriculum"]
KINDS, KERNELS, LOSSES, TIMESTEPS = (typing.get_args(t) for t in (Kind, Kernel, Loss, Timesteps))


@dataclass(frozen=True)
class ObjectiveConfig:
    """The training objective. Fields other than `kind` are ignored when kind == 'ar'."""

    kind: Kind = "dlm"
    """'dlm' (diffusion LM, bidirectional) or 'ar' (next-token prediction, causal)."""
    kernel: Kernel = "masked"
    """Corruption: 'masked' replaces a token by the mask token (absorbing diffusion);
    'uniform' replaces it by a uniformly random real token (the model then needs t)."""
    schedule: str = "linear"
    """alpha(t): 'linear', 'polyK' (e.g. 'poly2'), 'cosine' (see schedules.py)."""
    loss: Loss = "elbo"
    """'elbo': Quokka eq. 9, (1/L) w(t) sum over corrupted i of CE_i, an unbiased negative ELBO
    (masked kernel). 'maskgit': the same with w = 1. 'elbo_realized_masked': the paper's released
    code's variant, -alpha'(t) * sum over corrupted i of CE_i / M with M the realized number of
    corrupted tokens (0 when M = 0) instead of the expected L (1 - alpha(t)); for the linear
    schedule that is the mean CE over masked tokens. It is a biased (ratio) estimator."""
    timesteps: Timesteps = "uniform"
    """How t is drawn per sequence: 'uniform' on [t_min, 1]; 'antithetic', stratified over the
    batch (one uniform offset, B evenly spaced strata) for lower variance; 'curriculum', a
    normal window truncated to [t_min, 1] whose centre moves from 0 to 1 with progress."""
    t_min: float = DEFAULT_T_MIN
    """Smallest t drawn; w(t) is unbounded at 0 (see DEFAULT_T_MIN)."""
    curriculum_width: float = 0.2
    """Std of the curriculum's normal window (before truncation to [t_min, 1])."""

    def __post_init__(self) -> None:
        check_types(self)
        try:
            schedule_power(self.schedule)
        except ValueError as err:
            raise ConfigError(f"ObjectiveConfig.schedule: {err}") from None
        require(0.0 < self.t_min < 1.0, "ObjectiveConfig.t_min", self.t_min, "a value in (0, 1)")
        require(self.curriculum_width > 0.0, "ObjectiveConfig.curriculum_width",
                self.curriculum_width, "a positive width")

    @property
    def needs_time_embedding(self) -> bool:
        """A uniform-kernel denoiser cannot see the noise level in its input, so it is given t."""
        return self.kind == "dlm" and self.kernel == "uniform"
