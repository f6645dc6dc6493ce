"""Cauchy kernels: k[..., l] = Σ_n v[..., n] / (z[l] − w[..., n]) (S4 paper, Algorithm 1, step 3).

Backends
- "naive":   materialises the (..., N, L) tensor. Simple, fast for small sizes, O(NL) memory.
- "chunked": walks L in chunks sized from a memory budget and recomputes them in the backward pass,
             so forward and backward use O(N + L) extra memory per chunk. The CPU default.
- "triton":  a fused GPU kernel (s4/cauchy_triton.py), used by "auto" on CUDA when Triton is installed.
"""

from __future__ import annotations

import importlib.util
import math

import torch
from torch import Tensor

BACKENDS = ("naive", "chunked", "triton", "auto")
DEFAULT_BUDGET_BYTES = 64 * 2**20
# Complex temporaries alive at once inside a chunk: the difference, the quotient and the reduction buffer.
_TEMPORARIES = 3


def cauchy(v: Tensor, z: Tensor, w: Tensor, backend: str = "auto", budget_bytes: int | None = None) -> Tensor:
    """k[..., l] = Σ_n v[..., n] / (z[..., l] − w[..., n]).

    v (..., N) and w (..., N) broadcast against each other, z (L,) or (..., L) → k (..., L), complex.
    Differentiable in v and w (z holds evaluation points and gets no gradient).
    """
    _check_inputs(v, z, w)
    backend = resolve_backend(backend, v.device)
    if backend == "naive":
        return cauchy_naive(v, z, w)
    if backend == "chunked":
        return _ChunkedCauchy.apply(v, z, w, budget_bytes or DEFAULT_BUDGET_BYTES)
    from s4.cauchy_triton import cauchy_triton

    return cauchy_triton(v, z, w)


def cauchy_conj(v: Tensor, z: Tensor, w: Tensor, backend: str = "auto") -> Tensor:
    """Σ over conjugate pairs: Σ_n v_n/(z − w_n) + v̄_n/(z − w̄_n), for systems that keep one state per pair.

    v (..., N/2), z (L,), w (..., N/2) → (..., L).
    """
    v, w = torch.broadcast_tensors(v, w)
    return cauchy(torch.cat([v, v.conj()], -1), z, torch.cat([w, w.conj()], -1), backend=backend)


def cauchy_naive(v: Tensor, z: Tensor, w: Tensor) -> Tensor:
    """Reference: builds the full (..., N, L) tensor of terms, then sums over N."""
    return (v.unsqueeze(-1) / (z.unsqueeze(-2) - w.unsqueeze(-1))).sum(-2)


def triton_available(device: torch.device | str | None = None) -> bool:
    """True where the Triton backend can run: a CUDA device, or TRITON_INTERPRET=1 for tests on the CPU."""
    if importlib.util.find_spec("triton") is None or importlib.util.find_spec("s4.cauchy_triton") is None:
        return False
    from s4.cauchy_triton import runs_on

    return runs_on(torch.device(device) if device is not None else torch.device("cpu"))


def resolve_backend(backend: str, device: torch.device) -> str:
    """Turn "auto" into a concrete backend for `device`; reject unknown or unavailable ones clearly."""
    if backend not in BACKENDS:
        raise ValueError(f"unknown Cauchy backend {backend!r}; choose one of {', '.join(BACKENDS)}")
    if backend == "auto":
        return "triton" if device.type == "cuda" and triton_available(device) else "chunked"
    if backend == "triton" and not triton_available(device):
        raise RuntimeError(
            f"the Triton Cauchy backend cannot run on {device}: it needs a CUDA device with Triton installed "
            "(or TRITON_INTERPRET=1 for CPU testing); use backend='chunked' or 'auto'"
        )
    return backend


def chunk_length(batch_shape: torch.Size, N: int, L: int, itemsize: int, budget_bytes: int) -> int:
    """How many evaluation points fit in one chunk: the (..., N, chunk) temporaries stay under budget."""
    per_point = max(1, math.prod(batch_shape)) * N * itemsize * _TEMPORARIES
    return max(1, min(L, budget_bytes // per_point))


def _chunks(z: Tensor, step: int):
    for start in range(0, z.shape[-1], step):
        yield slice(start, start + step)


class _ChunkedCauchy(torch.autograd.Function):
    """Chunked over l in both passes: nothing of size (N, L) is saved or built."""

    @staticmethod
    def forward(ctx, v: Tensor, z: Tensor, w: Tensor, budget_bytes: int) -> Tensor:
        ctx.save_for_backward(v, z, w)
        ctx.budget_bytes = budget_bytes
        batch = torch.broadcast_shapes(v.shape[:-1], z.shape[:-1], w.shape[:-1])
        dtype = torch.promote_types(torch.promote_types(v.dtype, z.dtype), w.dtype)
        out = torch.empty(*batch, z.shape[-1], dtype=dtype, device=v.device)
        step = chunk_length(batch, v.shape[-1], z.shape[-1], out.element_size(), budget_bytes)
        v, w = v.unsqueeze(-1), w.unsqueeze(-1)
        for chunk in _chunks(z, step):
            torch.sum(v / (z[..., None, chunk] - w), dim=-2, out=out[..., chunk])
        return out

    @staticmethod
    def backward(ctx, grad: Tensor):
        v, z, w = ctx.saved_tensors
        # For holomorphic k, PyTorch wants grad · conj(∂k/∂x), summed over l:
        # ∂k_l/∂v_n = 1/(z_l − w_n) and ∂k_l/∂w_n = v_n/(z_l − w_n)², so both share the reciprocal.
        batch = torch.broadcast_shapes(v.shape[:-1], z.shape[:-1], w.shape[:-1], grad.shape[:-1])
        N = v.shape[-1]
        sum_g_r = torch.zeros(*batch, N, dtype=grad.dtype, device=grad.device)
        sum_g_r2 = torch.zeros_like(sum_g_r)
        step = chunk_length(batch, N, z.shape[-1], grad.element_size(), ctx.budget_bytes)
        g = grad.unsqueeze(-2)
        w_col = w.unsqueeze(-1)
        for chunk in _chunks(z, step):
            reciprocal = (z[..., None, chunk] - w_col).reciprocal().conj()
            weighted = g[..., chunk] * reciprocal
            sum_g_r += weighted.sum(-1)
            sum_g_r2 += (weighted * reciprocal).sum(-1)
        grad_v = _sum_to(sum_g_r, v.shape) if ctx.needs_input_grad[0] else None
        grad_w = _sum_to(sum_g_r2 * v.conj(), w.shape) if ctx.needs_input_grad[2] else None
        return grad_v, None, grad_w, None


def _sum_to(t: Tensor, shape: torch.Size) -> Tensor:
    """Undo broadcasting: sum `t` down to `shape`."""
    while t.dim() > len(shape):
        t = t.sum(0)
    dims = [i for i, (a, b) in enumerate(zip(t.shape, shape, strict=True)) if b == 1 and a != 1]
    return t.sum(dims, keepdim=True) if dims else t


def _check_inputs(v: Tensor, z: Tensor, w: Tensor) -> None:
    if v.shape[-1] != w.shape[-1]:
        raise ValueError(f"v (..., N) and w (..., N) disagree on N: {tuple(v.shape)} vs {tuple(w.shape)}")
    if not (v.device == z.device == w.device):
        raise ValueError(f"v, z and w must be on one device, got {v.device}, {z.device}, {w.device}")
    try:
        torch.broadcast_shapes(v.shape[:-1], w.shape[:-1], z.shape[:-1])
    except RuntimeError as error:
        raise ValueError(
            f"batch shapes do not broadcast: v {tuple(v.shape)}, z {tuple(z.shape)}, w {tuple(w.shape)}"
        ) from error
