"""Small building blocks without attention: RMSNorm, SwiGLU MLP, diffusion-time embedding."""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import nn


class RMSNorm(nn.Module):
    """RMSNorm with a learned scale and no bias, computed in fp32 whatever the input dtype."""

    def __init__(self, dim: int, eps: float):
        super().__init__()
        self.eps = eps
        self.weight = nn.Parameter(torch.ones(dim))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        # fp32 because the mean of squares loses precision in bf16.
        out = F.rms_norm(x.float(), (x.shape[-1],), self.weight.float(), self.eps)
        return out.type_as(x)


class SwiGLU(nn.Module):
    """down(silu(gate(x)) * up(x)); gate and up are one fused matmul."""

    def __init__(self, d_model: int, hidden: int):
        super().__init__()
        self.gate_up = nn.Linear(d_model, 2 * hidden, bias=False)
        self.down = nn.Linear(hidden, d_model, bias=False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        gate, up = self.gate_up(x).chunk(2, dim=-1)  # (b, t, hidden) each
        return self.down(F.silu(gate) * up)


class TimeEmbedding(nn.Module):
    """t in [0, 1] -> sinusoidal features of width d -> Linear -> SiLU -> Linear (no biases).

    The result is added to every position's hidden state before the first block: enough for a
    uniform-kernel denoiser, which cannot tell the noise level from a clean-looking sequence.
    """

    def __init__(self, d_model: int):
        super().__init__()
        self.d_model = d_model
        self.fc1 = nn.Linear(d_model, d_model, bias=False)
        self.fc2 = nn.Linear(d_model, d_model, bias=False)

    def forward(self, t: torch.Tensor) -> torch.Tensor:
        half = self.d_model // 2
        exponents = torch.arange(half, device=t.device, dtype=torch.float32) / half
        freqs = torch.exp(-math.log(10000.0) * exponents)  # (half,)
        # Scaled by 1000 as in DiT: t in [0, 1] then spans the frequencies like 1000 steps would.
        angles = 1000.0 * t.float()[:, None] * freqs[None, :]  # (b, half)
        features = torch.cat([torch.cos(angles), torch.sin(angles)], dim=-1)  # (b, d)
        features = features.to(self.fc1.weight.dtype)
        return self.fc2(F.silu(self.fc1(features)))  # (b, d)
