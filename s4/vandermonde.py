"""Vandermonde products for diagonal SSMs: k[..., l] = Σ_n v[..., n] · exp(x[..., n] · l) (S4D kernel).

Backends mirror s4/cauchy.py: "naive" materialises (..., N, L); "chunked" walks l in chunks and recomputes
them in the backward pass, keeping O(N + L) extra memory; "triton" fuses it on the GPU.
"""

from __future__ import annotations

import torch
from torch import Tensor

from s4.cauchy import DEFAULT_BUDGET_BYTES, _sum_to, chunk_length, resolve_backend


def vandermonde(v: Tensor, x: Tensor, L: int, backend: str = "auto", budget_bytes: int | None = None) -> Tensor:
    """k[..., l] = Σ_n v[..., n] · exp(x[..., n] · l) for l < L.

    v (..., N) and x (..., N) complex, broadcasting → k (..., L) complex. Differentiable in v and x.
    """
    if v.shape[-1] != x.shape[-1]:
        raise ValueError(f"v (..., N) and x (..., N) disagree on N: {tuple(v.shape)} vs {tuple(x.shape)}")
    if L < 1:
        raise ValueError(f"kernel length L must be positive, got {L}")
    backend = resolve_backend(backend, v.device)
    if backend == "naive":
        return vandermonde_naive(v, x, L)
    if backend == "chunked":
        return _ChunkedVandermonde.apply(v, x, L, budget_bytes or DEFAULT_BUDGET_BYTES)
    from s4.cauchy_triton import vandermonde_triton

    return vandermonde_triton(v, x, L)


def vandermonde_naive(v: Tensor, x: Tensor, L: int) -> Tensor:
    """Reference: builds exp(x ⊗ l) as a (..., N, L) tensor."""
    steps = torch.arange(L, device=x.device, dtype=x.real.dtype)
    return (v.unsqueeze(-1) * torch.exp(x.unsqueeze(-1) * steps)).sum(-2)


def _powers(x: Tensor, start: int, stop: int) -> Tensor:
    steps = torch.arange(start, stop, device=x.device, dtype=x.real.dtype)
    return torch.exp(x.unsqueeze(-1) * steps)


class _ChunkedVandermonde(torch.autograd.Function):
    @staticmethod
    def forward(ctx, v: Tensor, x: Tensor, L: int, budget_bytes: int) -> Tensor:
        ctx.save_for_backward(v, x)
        ctx.L, ctx.budget_bytes = L, budget_bytes
        batch = torch.broadcast_shapes(v.shape[:-1], x.shape[:-1])
        dtype = torch.promote_types(v.dtype, x.dtype)
        out = torch.empty(*batch, L, dtype=dtype, device=v.device)
        step = chunk_length(batch, v.shape[-1], L, out.element_size(), budget_bytes)
        for start in range(0, L, step):
            stop = min(L, start + step)
            torch.sum(v.unsqueeze(-1) * _powers(x, start, stop), dim=-2, out=out[..., start:stop])
        return out

    @staticmethod
    def backward(ctx, grad: Tensor):
        v, x = ctx.saved_tensors
        # ∂k_l/∂v_n = exp(x_n l), ∂k_l/∂x_n = v_n · l · exp(x_n l); PyTorch wants grad · conj(∂k/∂·), summed over l.
        batch = torch.broadcast_shapes(v.shape[:-1], x.shape[:-1], grad.shape[:-1])
        N = v.shape[-1]
        acc_v = torch.zeros(*batch, N, dtype=grad.dtype, device=grad.device)
        acc_x = torch.zeros_like(acc_v)
        step = chunk_length(batch, N, ctx.L, grad.element_size(), ctx.budget_bytes)
        g = grad.conj().unsqueeze(-2)
        for start in range(0, ctx.L, step):
            stop = min(ctx.L, start + step)
            weighted = g[..., start:stop] * _powers(x, start, stop)
            acc_v += weighted.sum(-1)
            steps = torch.arange(start, stop, device=x.device, dtype=x.real.dtype)
            acc_x += (weighted * steps).sum(-1)
        grad_v = _sum_to(acc_v.conj(), v.shape) if ctx.needs_input_grad[0] else None
        grad_x = _sum_to((acc_x * v).conj(), x.shape) if ctx.needs_input_grad[1] else None
        return grad_v, grad_x, None, None
