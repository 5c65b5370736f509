"""What a run optimises: the objective's options, as one frozen, validated dataclass."""

from __future__ import annotations

from dataclasses import dataclass

from .schedules import DEFAULT_T_MIN, get_schedule

KINDS = ("dlm", "ar")
KERNELS = ("masked", "uniform")
LOSSES = ("elbo", "maskgit", "elbo_realized_masked")
TIMESTEPS = ("uniform", "antithetic", "curriculum")


@dataclass(frozen=True)
class ObjectiveConfig:
    """The training objective. Fields other than `kind` are ignored when kind == 'ar'."""

    kind: str = "dlm"
    """'dlm' (diffusion LM, bidirectional) or 'ar' (next-token prediction, causal)."""
    kernel: str = "masked"
    """Corruption: 'masked' replaces a token by the mask token (absorbing diffusion);
    'uniform' replaces it by a uniformly random real token (the model then needs t)."""
    schedule: str = "linear"
    """alpha(t): 'linear', 'polyK' (e.g. 'poly2'), 'cosine' (see schedules.py)."""
    loss: str = "elbo"
    """'elbo': Quokka eq. 9, (1/L) w(t) sum over corrupted i of CE_i, an unbiased negative ELBO
    (masked kernel). 'maskgit': the same with w = 1. 'elbo_realized_masked': the paper's released
    code's variant, -alpha'(t) * sum over corrupted i of CE_i / M with M the realized number of
    corrupted tokens (0 when M = 0) instead of the expected L (1 - alpha(t)); for the linear
    schedule that is the mean CE over masked tokens. It is a biased (ratio) estimator."""
    timesteps: str = "uniform"
    """How t is drawn per sequence: 'uniform' on [t_min, 1]; 'antithetic', stratified over the
    batch (one uniform offset, B evenly spaced strata) for lower variance; 'curriculum', a
    normal window truncated to [t_min, 1] whose centre moves from 0 to 1 with progress."""
    t_min: float = DEFAULT_T_MIN
    """Smallest t drawn; w(t) is unbounded at 0 (see schedules.DEFAULT_T_MIN)."""
    curriculum_width: float = 0.2
    """Std of the curriculum's normal window (before truncation to [t_min, 1])."""

    def __post_init__(self) -> None:
        for name, valid in (
            ("kind", KINDS),
            ("kernel", KERNELS),
            ("loss", LOSSES),
            ("timesteps", TIMESTEPS),
        ):
            if getattr(self, name) not in valid:
                raise ValueError(
                    f"ObjectiveConfig.{name} must be one of {valid}, got {getattr(self, name)!r}"
                )
        try:
            get_schedule(self.schedule)
        except ValueError as err:
            raise ValueError(f"ObjectiveConfig.schedule: {err}") from None
        if not 0.0 < self.t_min < 1.0:
            raise ValueError(f"ObjectiveConfig.t_min must be in (0, 1), got {self.t_min!r}")
        if not self.curriculum_width > 0.0:
            raise ValueError(
                f"ObjectiveConfig.curriculum_width must be > 0, got {self.curriculum_width!r}"
            )

    @property
    def needs_time_embedding(self) -> bool:
        """A uniform-kernel denoiser cannot see the noise level in its input, so it is given t."""
        return self.kind == "dlm" and self.kernel == "uniform"
