"""Convolution by FFT: the plain reference `fft_conv` and `fft_conv_channels_last`, the S4 layer's low-memory one.

Both zero-pad to n = 2L, so a causal kernel (H, L) never wraps around, and a two-sided kernel (H, 2L) laid out
circularly by `two_sided` (lag −j at index 2L − j) covers a bidirectional layer in one convolution.
"""

from __future__ import annotations

import torch
from torch import Tensor
from torch.autograd.function import once_differentiable

# Bytes of one complex spectrum buffer per channel chunk in `fft_conv_channels_last`. Measured on the 2-core CPU
# at B = 2, H = 128, L = 16000, one thread: 1-8 MiB chunks ran equally fast (each FFT call still spans tens of
# rows); every temporary of a chunk is about this size, so smaller chunks leave smaller holes in the heap.
CHUNK_BYTES = 4 * 2**20


def fft_conv(u: Tensor, k: Tensor) -> Tensor:
    """y_t = Σ_{j≤t} k_j u_{t−j} for a causal k (H, L); for a two-sided k (H, 2L) from `two_sided`, also
    + Σ_{j≥1} b_j u_{t+j}. Plain autograd (it saves the spectra): the reference the layer's version is tested by.

    u (B, H, L), k (H, L) or (H, 2L) → (B, H, L), in u's precision.
    """
    L = u.shape[-1]
    n = 2 * L
    y = torch.fft.irfft(torch.fft.rfft(u, n=n) * torch.fft.rfft(k, n=n), n=n)
    return y[..., :L]


def two_sided(causal: Tensor, anticausal: Tensor) -> Tensor:
    """One circular kernel of length 2L for y_t = Σ_{j≥0} a_j u_{t−j} + b_j u_{t+j} (a causal, b anticausal).

    a, b (H, L) → (H, 2L) = [a_0 + b_0, a_1 … a_{L−1}, 0, b_{L−1} … b_1]: lag −j sits at index 2L − j. Outputs
    t < L only reach lags |t − s| < L, so index L (lag ±L) stays empty and nothing wraps around.
    """
    empty = causal.new_zeros(causal.shape[0], 1)
    lag_zero = causal[:, :1] + anticausal[:, :1]
    return torch.cat([lag_zero, causal[:, 1:], empty, anticausal[:, 1:].flip(-1)], dim=-1)


def fft_conv_channels_last(x: Tensor, k: Tensor, chunk_bytes: int = CHUNK_BYTES) -> Tensor:
    """`fft_conv` on channels-last input, chunked over channels, saving only x and k for the backward pass.

    x (B, L, H), k (H, L) or (H, 2L) → y (B, L, H), in x's precision. The spectra of a few channels at a time
    live only inside one loop step, and the backward pass recomputes them: peak extra memory is about
    `chunk_bytes` per spectrum instead of (B, H, 2L) buffers kept from forward to backward. The layout matches
    the layer's (B, L, H), so no transposed copy is made before or after.
    """
    if x.dim() != 3 or k.dim() != 2 or k.shape[0] != x.shape[2] or k.shape[1] not in (x.shape[1], 2 * x.shape[1]):
        raise ValueError(f"need x (B, L, H) and k (H, L) or (H, 2L), got {tuple(x.shape)} and {tuple(k.shape)}")
    return _ChannelsLastConv.apply(x, k.to(x.dtype), chunk_bytes)


def _channel_chunks(x: Tensor, chunk_bytes: int):
    """Slices of channels whose (B, h, L + 1) complex spectrum fits in chunk_bytes (at least one channel)."""
    B, L, H = x.shape
    per_channel = B * (L + 1) * 2 * x.element_size()
    step = max(1, chunk_bytes // per_channel)
    for start in range(0, H, step):
        yield slice(start, min(H, start + step))


class _ChannelsLastConv(torch.autograd.Function):
    """y = irfft(rfft(x) · rfft(k))[:L] per channel chunk; the backward pass is the adjoint, by the same route:
    ∂/∂x_s = Σ_t g_t k_{t−s} = irfft(G · conj(K))[:L] and ∂/∂k_j = Σ_b Σ_t g_t x_{t−j} = irfft(Σ_b G · conj(X)),
    both circular correlations over n = 2L with zero-padded g and x, hence exact for every entry of k.
    """

    @staticmethod
    def forward(ctx, x: Tensor, k: Tensor, chunk_bytes: int) -> Tensor:
        ctx.save_for_backward(x, k)
        ctx.chunk_bytes = chunk_bytes
        L = x.shape[1]
        out = torch.empty_like(x, memory_format=torch.contiguous_format)
        for h in _channel_chunks(x, chunk_bytes):
            spectrum = torch.fft.rfft(x[:, :, h].transpose(1, 2), n=2 * L)
            spectrum *= torch.fft.rfft(k[h], n=2 * L)
            out[:, :, h] = torch.fft.irfft(spectrum, n=2 * L)[..., :L].transpose(1, 2)
        return out

    @staticmethod
    @once_differentiable
    def backward(ctx, grad: Tensor):
        x, k = ctx.saved_tensors
        L, n = x.shape[1], 2 * x.shape[1]
        grad_x = torch.empty_like(x, memory_format=torch.contiguous_format) if ctx.needs_input_grad[0] else None
        grad_k = torch.empty_like(k) if ctx.needs_input_grad[1] else None
        for h in _channel_chunks(x, ctx.chunk_bytes):
            G = torch.fft.rfft(grad[:, :, h].transpose(1, 2), n=n)
            if grad_k is not None:
                by_k = (G * torch.fft.rfft(x[:, :, h].transpose(1, 2), n=n).conj_physical()).sum(0)
                grad_k[h] = torch.fft.irfft(by_k, n=n)[..., : k.shape[1]]
            if grad_x is not None:
                G *= torch.fft.rfft(k[h], n=n).conj_physical()
                grad_x[:, :, h] = torch.fft.irfft(G, n=n)[..., :L].transpose(1, 2)
        return grad_x, grad_k, None
