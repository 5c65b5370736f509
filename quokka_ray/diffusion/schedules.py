"""Noise schedules alpha(t): the probability that a token is still clean at time t.

alpha(0) = 1 (data), alpha(1) = 0 (all corrupted). The ELBO weight of the masked (absorbing)
process is w(t) = -alpha'(t) / (1 - alpha(t)); every schedule here has w ~ K / t near 0, which
is unbounded, so training and validation draw t from [t_min, 1] with t_min = DEFAULT_T_MIN.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch

from .config import DEFAULT_T_MIN, schedule_power

__all__ = ["DEFAULT_T_MIN", "CosineSchedule", "PolynomialSchedule", "Schedule", "get_schedule"]


class Schedule:
    """alpha(t), alpha'(t) and the ELBO weight w(t) on float tensors of any shape."""

    name: str

    def alpha(self, t: torch.Tensor) -> torch.Tensor:
        raise NotImplementedError

    def alpha_prime(self, t: torch.Tensor) -> torch.Tensor:
        raise NotImplementedError

    def weight(self, t: torch.Tensor) -> torch.Tensor:
        """w(t) = -alpha'(t) / (1 - alpha(t)); subclasses give a closed form stable near 0."""
        return -self.alpha_prime(t) / (1 - self.alpha(t))


@dataclass(frozen=True)
class PolynomialSchedule(Schedule):
    """alpha(t) = 1 - t^power; power 1 is the linear schedule (w = 1/t), 2 is 'poly2'."""

    power: int
    name: str

    def alpha(self, t: torch.Tensor) -> torch.Tensor:
        return 1 - torch.as_tensor(t) ** self.power

    def alpha_prime(self, t: torch.Tensor) -> torch.Tensor:
        return -self.power * torch.as_tensor(t) ** (self.power - 1)

    def weight(self, t: torch.Tensor) -> torch.Tensor:
        return self.power / torch.as_tensor(t)  # K t^(K-1) / t^K


@dataclass(frozen=True)
class CosineSchedule(Schedule):
    """alpha(t) = 1 - cos(pi/2 (1 - t))."""

    name: str = "cosine"

    def alpha(self, t: torch.Tensor) -> torch.Tensor:
        return 1 - torch.cos(math.pi / 2 * (1 - torch.as_tensor(t)))

    def alpha_prime(self, t: torch.Tensor) -> torch.Tensor:
        return -math.pi / 2 * torch.sin(math.pi / 2 * (1 - torch.as_tensor(t)))

    def weight(self, t: torch.Tensor) -> torch.Tensor:
        # (pi/2) sin(pi/2 (1-t)) / cos(pi/2 (1-t)) = (pi/2) / tan(pi t / 2)
        return math.pi / 2 / torch.tan(math.pi / 2 * torch.as_tensor(t))


def get_schedule(name: str) -> Schedule:
    """'linear', 'polyK' (K >= 1) or 'cosine'; anything else raises ValueError."""
    power = schedule_power(name)
    return CosineSchedule() if power is None else PolynomialSchedule(power=power, name=name)
