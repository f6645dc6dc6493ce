"""Causal convolution by FFT."""

from __future__ import annotations

import torch
from torch import Tensor


def fft_conv(u: Tensor, k: Tensor) -> Tensor:
    """Causal convolution y_t = Σ_{j≤t} k_j u_{t−j} by FFT, zero-padded to 2L so nothing wraps around.

    u (B, H, L), k (H, L) → (B, H, L), float32.
    """
    L = u.shape[-1]
    n = 2 * L
    y = torch.fft.irfft(torch.fft.rfft(u, n=n) * torch.fft.rfft(k, n=n), n=n)
    return y[..., :L]
