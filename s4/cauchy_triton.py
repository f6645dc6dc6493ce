"""Fused Triton kernels for the Cauchy and Vandermonde products: nothing of size N·L is ever in memory.

    Cauchy:      k[b, l] = Σ_n v[b, n] / (z[b, l] − w[b, n])
    Vandermonde: k[b, l] = Σ_n v[b, n] · exp(x[b, n] · l)

Triton has no complex type, so complex tensors travel as separate real and imaginary float planes (float32
for complex64, float64 for complex128). The forward pass gives each program one row b and a BLOCK_L stretch
of l, looping over n in (BLOCK_N, BLOCK_L) tiles. The backward pass gives each program one row and a BLOCK_N
stretch of n and loops over all of l, so every gradient is reduced by one program and needs no atomics.
Runs on CUDA, and on the CPU under TRITON_INTERPRET=1 (Triton's interpreter, slow: for tests only).
"""

from __future__ import annotations

import os

import torch
import triton
import triton.language as tl
from torch import Tensor

BLOCK_L = 128
MAX_BLOCK_N = 32


# Triton decides at decoration time whether a kernel is compiled or interpreted, so what counts is the
# setting when this module was imported, not the environment at call time.
INTERPRETED = os.environ.get("TRITON_INTERPRET") == "1"


def runs_on(device: torch.device) -> bool:
    """True on a CUDA device, or on the CPU when TRITON_INTERPRET=1 was set before this module was imported."""
    if device.type == "cuda":
        return torch.cuda.is_available() and not INTERPRETED
    return device.type == "cpu" and INTERPRETED


# ---- kernels -----------------------------------------------------------------------------------------------


@triton.jit
def _load_row(real_ptr, imag_ptr, row_offset, index, mask):
    return (
        tl.load(real_ptr + row_offset + index, mask=mask, other=0.0),
        tl.load(imag_ptr + row_offset + index, mask=mask, other=0.0),
    )


@triton.jit
def _conj_reciprocal(zr, zi, wr, wi, mask):
    """conj(1/(z − w)) = (z − w)/|z − w|² on a (BLOCK_N, BLOCK_L) tile, zero where masked (no 0/0 there)."""
    dr = zr[None, :] - wr[:, None]
    di = zi[None, :] - wi[:, None]
    scale = tl.where(mask, 1.0 / tl.where(mask, dr * dr + di * di, 1.0), 0.0)
    return dr * scale, di * scale


@triton.jit
def _conj_powers(xr, xi, steps, mask):
    """conj(exp(x·l)) = e^{Re x·l} (cos − i sin)(Im x·l) on a (BLOCK_N, BLOCK_L) tile, zero where masked."""
    magnitude = tl.where(mask, tl.exp(xr[:, None] * steps[None, :]), 0.0)
    angle = xi[:, None] * steps[None, :]
    return magnitude * tl.cos(angle), -magnitude * tl.sin(angle)


@triton.jit
def _forward_kernel(
    vr, vi, wr, wi, zr, zi, kr, ki, N, L, z_stride,
    VANDERMONDE: tl.constexpr, BLOCK_N: tl.constexpr, BLOCK_L: tl.constexpr,
):  # fmt: skip
    """k[b, l] for one row b and BLOCK_L points: Σ_n v_n · T_nl with T = 1/(z − w) or exp(w·l) (w holds x)."""
    row = tl.program_id(0)
    ls = tl.program_id(1) * BLOCK_L + tl.arange(0, BLOCK_L)
    l_mask = ls < L
    if VANDERMONDE:
        steps = ls.to(kr.dtype.element_ty)
    else:
        z_r, z_i = _load_row(zr, zi, row * z_stride, ls, l_mask)
    acc_r = tl.zeros([BLOCK_L], dtype=kr.dtype.element_ty)
    acc_i = tl.zeros([BLOCK_L], dtype=kr.dtype.element_ty)
    for start in range(0, N, BLOCK_N):
        ns = start + tl.arange(0, BLOCK_N)
        n_mask = ns < N
        mask = n_mask[:, None] & l_mask[None, :]
        v_r, v_i = _load_row(vr, vi, row * N, ns, n_mask)
        w_r, w_i = _load_row(wr, wi, row * N, ns, n_mask)
        if VANDERMONDE:
            t_r, t_i = _conj_powers(w_r, w_i, steps, mask)
        else:
            t_r, t_i = _conj_reciprocal(z_r, z_i, w_r, w_i, mask)
        # v · T = v · conj(conj T)
        acc_r += tl.sum(v_r[:, None] * t_r + v_i[:, None] * t_i, axis=0)
        acc_i += tl.sum(v_i[:, None] * t_r - v_r[:, None] * t_i, axis=0)
    tl.store(kr + row * L + ls, acc_r, mask=l_mask)
    tl.store(ki + row * L + ls, acc_i, mask=l_mask)


@triton.jit
def _backward_kernel(
    gr, gi, wr, wi, zr, zi, s1r, s1i, s2r, s2i, N, L, z_stride,
    VANDERMONDE: tl.constexpr, BLOCK_N: tl.constexpr, BLOCK_L: tl.constexpr,
):  # fmt: skip
    """For one row and BLOCK_N terms: s1_n = Σ_l g_l conj(T_nl) and s2_n = Σ_l g_l conj(T_nl)·D_nl, where
    D = conj(T) for Cauchy (∂T/∂w = T²) and D = l for Vandermonde (∂T/∂x = l·T)."""
    row = tl.program_id(0)
    ns = tl.program_id(1) * BLOCK_N + tl.arange(0, BLOCK_N)
    n_mask = ns < N
    w_r, w_i = _load_row(wr, wi, row * N, ns, n_mask)
    acc1_r = tl.zeros([BLOCK_N], dtype=s1r.dtype.element_ty)
    acc1_i = tl.zeros([BLOCK_N], dtype=s1r.dtype.element_ty)
    acc2_r = tl.zeros([BLOCK_N], dtype=s1r.dtype.element_ty)
    acc2_i = tl.zeros([BLOCK_N], dtype=s1r.dtype.element_ty)
    for start in range(0, L, BLOCK_L):
        ls = start + tl.arange(0, BLOCK_L)
        l_mask = ls < L
        mask = n_mask[:, None] & l_mask[None, :]
        g_r, g_i = _load_row(gr, gi, row * L, ls, l_mask)
        if VANDERMONDE:
            steps = ls.to(s1r.dtype.element_ty)
            c_r, c_i = _conj_powers(w_r, w_i, steps, mask)
        else:
            z_r, z_i = _load_row(zr, zi, row * z_stride, ls, l_mask)
            c_r, c_i = _conj_reciprocal(z_r, z_i, w_r, w_i, mask)
        t_r = g_r[None, :] * c_r - g_i[None, :] * c_i
        t_i = g_r[None, :] * c_i + g_i[None, :] * c_r
        acc1_r += tl.sum(t_r, axis=1)
        acc1_i += tl.sum(t_i, axis=1)
        if VANDERMONDE:
            acc2_r += tl.sum(t_r * steps[None, :], axis=1)
            acc2_i += tl.sum(t_i * steps[None, :], axis=1)
        else:
            acc2_r += tl.sum(t_r * c_r - t_i * c_i, axis=1)
            acc2_i += tl.sum(t_r * c_i + t_i * c_r, axis=1)
    tl.store(s1r + row * N + ns, acc1_r, mask=n_mask)
    tl.store(s1i + row * N + ns, acc1_i, mask=n_mask)
    tl.store(s2r + row * N + ns, acc2_r, mask=n_mask)
    tl.store(s2i + row * N + ns, acc2_i, mask=n_mask)


# ---- autograd wrappers -------------------------------------------------------------------------------------


def _planes(t: Tensor) -> tuple[Tensor, Tensor]:
    return t.real.contiguous(), t.imag.contiguous()


def _block_n(N: int) -> int:
    return min(MAX_BLOCK_N, triton.next_power_of_2(N))


class _Fused(torch.autograd.Function):
    """Both products on rows already broadcast to (B, N) and (B, L). The Vandermonde case passes z = None.

    v, w (B, N) complex, z (B, L) or (L,) complex or None, L → k (B, L) complex;
    gradients (B, N) for v and w: ∂k/∂v = T and ∂k/∂w = v·T² (Cauchy) or v·l·T (Vandermonde).
    """

    @staticmethod
    def forward(ctx, v: Tensor, w: Tensor, z: Tensor | None, L: int) -> Tensor:
        ctx.save_for_backward(v, w, z)
        B, N = v.shape
        vandermonde = z is None
        z_planes, z_stride = ((w.real, w.real), 0) if vandermonde else (_planes(z), z.stride(0) if z.dim() > 1 else 0)
        k_r, k_i = (v.real.new_empty(B, L) for _ in range(2))
        grid = (B, triton.cdiv(L, BLOCK_L))
        _forward_kernel[grid](
            *_planes(v), *_planes(w), *z_planes, k_r, k_i, N, L, z_stride,
            VANDERMONDE=vandermonde, BLOCK_N=_block_n(N), BLOCK_L=BLOCK_L,
        )  # fmt: skip
        return torch.complex(k_r, k_i)

    @staticmethod
    def backward(ctx, grad: Tensor):
        v, w, z = ctx.saved_tensors
        B, N = v.shape
        L = grad.shape[-1]
        vandermonde = z is None
        z_planes, z_stride = ((w.real, w.real), 0) if vandermonde else (_planes(z), z.stride(0) if z.dim() > 1 else 0)
        sums = [v.real.new_empty(B, N) for _ in range(4)]
        block_n = _block_n(N)
        _backward_kernel[(B, triton.cdiv(N, block_n))](
            *_planes(grad), *_planes(w), *z_planes, *sums, N, L, z_stride,
            VANDERMONDE=vandermonde, BLOCK_N=block_n, BLOCK_L=BLOCK_L,
        )  # fmt: skip
        by_term, by_derivative = torch.complex(sums[0], sums[1]), torch.complex(sums[2], sums[3])
        return by_term, v.conj() * by_derivative, None, None


def _rows(v: Tensor, w: Tensor, batch: torch.Size, dtype: torch.dtype) -> tuple[Tensor, Tensor]:
    N = v.shape[-1]
    return v.to(dtype).expand(*batch, N).reshape(-1, N), w.to(dtype).expand(*batch, N).reshape(-1, N)


def cauchy_triton(v: Tensor, z: Tensor, w: Tensor) -> Tensor:
    """k[..., l] = Σ_n v[..., n] / (z[..., l] − w[..., n]) by one fused kernel per pass.

    v (..., N), w (..., N), z (L,) or (..., L), broadcasting → k (..., L) complex. Differentiable in v and w.
    """
    batch = torch.broadcast_shapes(v.shape[:-1], z.shape[:-1], w.shape[:-1])
    dtype = torch.promote_types(torch.promote_types(v.dtype, z.dtype), torch.promote_types(w.dtype, torch.complex64))
    rows_v, rows_w = _rows(v, w, batch, dtype)
    L = z.shape[-1]
    z = z.to(dtype) if z.dim() == 1 else z.to(dtype).expand(*batch, L).reshape(-1, L)
    # Gradients flow back through the expand/reshape in _rows, which sums them over broadcast dimensions.
    return _Fused.apply(rows_v, rows_w, z, L).reshape(*batch, L)


def vandermonde_triton(v: Tensor, x: Tensor, L: int) -> Tensor:
    """k[..., l] = Σ_n v[..., n] · exp(x[..., n] · l) for l < L by one fused kernel per pass.

    v (..., N), x (..., N) complex, broadcasting → k (..., L) complex. Differentiable in v and x.
    """
    batch = torch.broadcast_shapes(v.shape[:-1], x.shape[:-1])
    dtype = torch.promote_types(torch.promote_types(v.dtype, x.dtype), torch.complex64)
    rows_v, rows_x = _rows(v, x, batch, dtype)
    return _Fused.apply(rows_v, rows_x, None, L).reshape(*batch, L)
