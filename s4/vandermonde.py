"""Vandermonde products for diagonal SSMs: k[..., l] = Σ_n v[..., n] · exp(x[..., n] · l) (S4D kernel).

Backends mirror s4/cauchy.py: "naive" materialises (..., N, L); "chunked" walks l in chunks and recomputes
them in the backward pass, keeping O(N + L) extra memory; "triton" fuses it on the GPU.

`vandermonde_conj` is what the S4D kernel uses: the real sum over conjugate pairs, l split into blocks so that
the CPU path is a real matrix product per block, with float64 block phases for float32 accuracy.
"""

from __future__ import annotations

import math

import torch
from torch import Tensor
from torch.autograd.function import once_differentiable

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


BLOCK = 64
"""Most steps per block in `vandermonde_conj` (float32 phase error ≲ |x|·BLOCK·2⁻²⁴); about √L when L is short."""
# Bytes of the float64 block arguments formed at once; a few buffers of about that size live beside them.
_PHASE_BUDGET_BYTES = 2 * 2**20


def vandermonde_conj(v: Tensor, x: Tensor, L: int, backend: str = "auto", block: int = BLOCK) -> Tensor:
    """K[..., l] = 2·Re Σ_n v_n exp(x_n l) for l < L: the sum over both members of each conjugate pair.

    v (..., N/2) complex, x (..., N/2) complex, broadcasting → K (..., L) real, in v's precision.
    In float32, exp(x·l) loses |x|·l·2⁻²⁴ of phase, which grows with l for slowly decaying modes. So
    l = l₀ + j: the block phase exp(x·l₀) is formed from x·l₀ in float64, once per block of `block` steps, and
    folded into v; only exp(x·j), j < block, is taken in v's precision (pass x in complex128 to keep its digits).
    "chunked" (the CPU default) then sums each block by one real matrix product (`_BlockedConj`); the other
    backends sum the same blocks with `vandermonde`.
    """
    if v.shape[-1] != x.shape[-1]:
        raise ValueError(f"v (..., N) and x (..., N) disagree on N: {tuple(v.shape)} vs {tuple(x.shape)}")
    if L < 1:
        raise ValueError(f"kernel length L must be positive, got {L}")
    backend = resolve_backend(backend, v.device)
    # Blocks of about √L steps balance the in-block powers (N·block) against the block phases (N·L/block):
    # at L = 100 (pooled layers) 64-step blocks would spend most of the time on powers past the kernel's end.
    block = min(L, block, math.isqrt(L - 1) + 1)
    if backend == "chunked":
        batch, N = torch.broadcast_shapes(v.shape[:-1], x.shape[:-1]), v.shape[-1]
        rows_v, rows_x = v.expand(*batch, N).reshape(-1, N), x.expand(*batch, N).reshape(-1, N)
        return _BlockedConj.apply(rows_v, rows_x, L, block).reshape(*batch, L)
    starts = torch.arange(0, L, block, device=v.device, dtype=torch.float64)
    base = torch.exp(x.to(torch.complex128).unsqueeze(-2) * starts[:, None]).to(v.dtype)  # (..., L/block, N/2)
    K = 2 * vandermonde(v.unsqueeze(-2) * base, x.to(v.dtype).unsqueeze(-2), block, backend=backend).real
    return K.flatten(-2)[..., :L]


def _block_powers(x: Tensor, block: int, dtype: torch.dtype) -> Tensor:
    """P = exp(x·j), j < block, as real planes [Re P; Im P]: x (R, N/2) → (R, N, block)."""
    steps = torch.arange(block, device=x.device, dtype=dtype.to_real())
    P = _exp(x.to(dtype).unsqueeze(-1) * steps)
    return torch.cat([P.real, P.imag], dim=-2)


def _exp(z: Tensor) -> Tensor:
    """exp(z) for complex z as e^Re z · (cos Im z + i sin Im z): the same values as torch.exp, but real
    exp/cos/sin are vectorised on the CPU and complex exp is not (10x faster in complex64, measured)."""
    return torch.polar(torch.exp(z.real), z.imag)


def _phase_chunks(x: Tensor, L: int, block: int, dtype: torch.dtype):
    """Yield (blocks, starts, phases) per chunk of blocks: a slice of block indices, their starts l₀ (nb,) and
    exp(x·l₀) (R, nb, N/2) in `dtype`; x (R, N/2). Chunks keep the float64 arguments within _PHASE_BUDGET_BYTES.

    x·l₀ is formed in float64 and its angle reduced modulo 2π there; only then are exp and cos/sin taken in
    `dtype`. So a float32 phase carries float32 rounding of an angle in [0, 2π), not the |Im x|·l₀·2⁻²⁴ error
    of a float32 product, and no slow float64 transcendental runs.
    """
    R, half = x.shape
    n_blocks = -(-L // block)
    step = max(1, min(n_blocks, _PHASE_BUDGET_BYTES // (R * half * 16)))
    wide, real = x.to(torch.complex128).unsqueeze(-2), dtype.to_real()
    for first in range(0, n_blocks, step):
        blocks = slice(first, min(n_blocks, first + step))
        starts = block * torch.arange(first, blocks.stop, device=x.device, dtype=torch.float64)
        argument = wide * starts[:, None]
        angle = torch.remainder(argument.imag, 2 * math.pi)
        yield blocks, starts.to(real), torch.polar(torch.exp(argument.real.to(real)), angle.to(real))


class _BlockedConj(torch.autograd.Function):
    """K[r, l₀ + j] = 2 Σ_n Re(w_rn P_nj), w = v·exp(x·l₀), P = exp(x·j): per block one real matrix product
    [Re w, −Im w] (nb, N) @ [Re P; Im P] (N, block). Saves only v and x; the backward pass recomputes the
    phases, block by block as the forward pass does, so no (nb, N) tensor outlives its chunk.

    v (R, N/2) complex, x (R, N/2) complex → K (R, L) real in v's precision.
    """

    @staticmethod
    def forward(ctx, v: Tensor, x: Tensor, L: int, block: int) -> Tensor:
        ctx.save_for_backward(v, x)
        ctx.L, ctx.block = L, block
        R, half = v.shape
        powers = 2 * _block_powers(x, block, v.dtype)  # the 2 of 2·Re, applied once to the small factor
        out = v.real.new_empty(R, -(-L // block), block)
        for blocks, _, phases in _phase_chunks(x, L, block, v.dtype):
            w = v.unsqueeze(-2) * phases
            torch.matmul(torch.cat([w.real, -w.imag], dim=-1), powers, out=out[:, blocks])
        out = out.view(R, -1)
        return out if out.shape[1] == L else out[:, :L].contiguous()

    @staticmethod
    @once_differentiable
    def backward(ctx, grad: Tensor):
        # With g = ∂loss/∂K (real) and PyTorch's convention grad_z = ∂/∂Re z + i ∂/∂Im z:
        #   grad_w = 2 Σ_j g_j conj(P_j),  grad_P = 2 Σ_l₀ g_l₀ conj(w_l₀)  (both real matrix products),
        #   grad_v = Σ_l₀ grad_w conj(e^{x l₀}),
        #   grad_x = conj(v) Σ_l₀ l₀ grad_w conj(e^{x l₀}) + Σ_j j grad_P conj(P).
        v, x = ctx.saved_tensors
        L, block = ctx.L, ctx.block
        R, half = v.shape
        powers = _block_powers(x, block, v.dtype)
        n_blocks = -(-L // block)
        g = grad if n_blocks * block == L else torch.nn.functional.pad(grad, (0, n_blocks * block - L))
        g = g.reshape(R, n_blocks, block)
        by_powers = torch.zeros_like(powers)
        by_phase, by_start = v.new_zeros(R, half), v.new_zeros(R, half)
        for blocks, starts, phases in _phase_chunks(x, L, block, v.dtype):
            w = v.unsqueeze(-2) * phases
            by_powers.baddbmm_(torch.cat([w.real, -w.imag], dim=-1).transpose(1, 2), g[:, blocks], alpha=2)
            by_w = 2 * torch.bmm(g[:, blocks], powers.transpose(1, 2))  # (R, nb, N): ∂/∂[Re w, −Im w]
            grad_w = torch.complex(by_w[..., :half], -by_w[..., half:]) * phases.conj()
            by_phase += grad_w.sum(-2)
            by_start += (grad_w * starts[:, None]).sum(-2)
        steps = torch.arange(block, device=v.device, dtype=v.real.dtype)
        P = torch.complex(powers[:, :half], powers[:, half:])
        grad_P = torch.complex(by_powers[:, :half], by_powers[:, half:])
        grad_x = v.conj() * by_start + (grad_P * P.conj() * steps).sum(-1)
        return by_phase, grad_x.to(x.dtype), None, None
