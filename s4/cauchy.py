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
from torch.autograd.function import once_differentiable

BACKENDS = ("naive", "chunked", "triton", "auto")
DEFAULT_BUDGET_BYTES = 64 * 2**20
# The conjugate-pair path streams each chunk through a few elementwise passes and one matrix product. Measured
# on a 2-core CPU at H = 128, N/2 = 32: 4-16 MiB chunks were fastest; below 1 MiB per-chunk overhead dominates.
DEFAULT_PAIR_BUDGET_BYTES = 8 * 2**20
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

    v (..., N/2), z (L,), w (..., N/2) → (..., L). The "chunked" backend sums each pair as one real-coefficient
    rational function (`_ConjPairs`); the others sum both members of each pair as separate terms.
    """
    _check_inputs(v, z, w)
    backend = resolve_backend(backend, v.device)
    if backend == "chunked" and z.dim() == 1:
        return _conj_pairs(v, z, w, DEFAULT_PAIR_BUDGET_BYTES)
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


def _conj_pairs(v: Tensor, z: Tensor, w: Tensor, budget_bytes: int) -> Tensor:
    """Σ_n v_n/(z − w_n) + v̄_n/(z − w̄_n) = Σ_n (a_n + b_n z) / (z² − d_n z + c_n),
    with the real coefficients a = −2 Re(v w̄), b = 2 Re(v), c = |w|², d = 2 Re(w).

    v (..., N/2), z (L,), w (..., N/2) → (..., L). Halves the terms and turns the sum over n into a real
    matrix product. Rows of v that share a row of w (dplr_kernel's four products) share the denominators.
    Autograd carries the gradients from (a, b, c, d) back to v and w, broadcasting included.
    """
    N = v.shape[-1]
    batch = torch.broadcast_shapes(v.shape[:-1], w.shape[:-1])
    lead = batch[: len(batch) - (w.dim() - 1)]
    if batch[len(lead) :] != w.shape[:-1]:  # w itself broadcasts: no denominators to share
        w, lead = w.expand(*batch, N), ()
    real = torch.promote_types(torch.promote_types(v.real.dtype, w.real.dtype), z.real.dtype)
    shared = w.reshape(-1, N)  # (W, N): one denominator row each
    rows = v.expand(*batch, N).reshape(-1, *shared.shape).transpose(0, 1)  # (W, K, N)
    ab = torch.cat([-2 * (rows * shared.conj()[:, None]).real, 2 * rows.real], dim=1).to(real)  # (W, 2K, N)
    c, d = shared.abs().square().to(real), 2 * shared.real.to(real)
    k = _ConjPairs.apply(ab, c, d, z.to(ab.dtype.to_complex()), budget_bytes)  # (W, K, L)
    return k.transpose(0, 1).reshape(*batch, z.shape[-1])


def _pair_reciprocal(c: Tensor, d: Tensor, z: Tensor, out: Tensor) -> Tensor:
    """R = 1/(z² − d z + c) into `out` (W, N, 2, Lc) as [Re R, Im R]. c, d (W, N), z (Lc,) complex.

    Seven elementwise passes over (W, N, Lc) (eight when z has a real part); everything else is per-l.
    """
    real, imag = out[:, :, 0], out[:, :, 1]
    z2 = z * z
    torch.add(c[..., None], z2.real, out=real)  # Re D = Re z² − d Re z + c
    if z.real.any():
        real.addcmul_(d[..., None], z.real, value=-1)
    torch.addcmul(-z2.imag, d[..., None], z.imag, out=imag)  # −Im D = d Im z − Im z²
    scale = (real * real).addcmul_(imag, imag).reciprocal_()  # 1/|D|²
    real.mul_(scale)
    imag.mul_(scale)
    return out


def _pair_chunk_length(W: int, N: int, L: int, itemsize: int, budget_bytes: int) -> int:
    # Backward holds R and R², two planes each, plus one plane of scratch: five (W, N) planes per point.
    return max(1, min(L, budget_bytes // (W * N * itemsize * 5)))


class _ConjPairs(torch.autograd.Function):
    """k_l = Σ_n (a_n + b_n z_l) R_ln, R = 1/(z² − d z + c), chunked over l in both passes.

    ab (W, 2K, N) = [a; b] real, c, d (W, N) real, z (L,) complex → k (W, K, L) complex.
    Per chunk: R in two real planes, then one batched real matrix product [a; b] @ [Re R | Im R].
    """

    @staticmethod
    def forward(ctx, ab: Tensor, c: Tensor, d: Tensor, z: Tensor, budget_bytes: int) -> Tensor:
        ctx.save_for_backward(ab, c, d, z)
        ctx.budget_bytes = budget_bytes
        (W, two_K, N), L = ab.shape, z.shape[0]
        K = two_K // 2
        out = torch.empty(W, K, L, dtype=z.dtype, device=z.device)
        step = _pair_chunk_length(W, N, L, ab.element_size(), budget_bytes)
        buffer = ab.new_empty(W, N, 2, step)
        for chunk in _chunks(z, step):
            zc = z[chunk]
            lc = zc.shape[0]
            R = _pair_reciprocal(c, d, zc, buffer if lc == step else ab.new_empty(W, N, 2, lc))
            sums = torch.bmm(ab, R.view(W, N, 2 * lc)).view(W, two_K, 2, lc)  # Σ_n [a; b] · [Re R, Im R]
            a_R = torch.complex(sums[:, :K, 0], sums[:, :K, 1])
            b_R = torch.complex(sums[:, K:, 0], sums[:, K:, 1])
            torch.addcmul(a_R, zc, b_R, out=out[..., chunk])
        return out

    @staticmethod
    @once_differentiable
    def backward(ctx, grad: Tensor):
        ab, c, d, z = ctx.saved_tensors
        # For a real parameter p, PyTorch wants Re Σ_l ḡ_l ∂k_l/∂p. With S = R²:
        #   ∂k/∂a = R, ∂k/∂b = zR, ∂k/∂c = −(a + bz) S, ∂k/∂d = (a + bz) z S.
        # So everything follows from Re Σ_l x̄_l R_l and Re Σ_l x̄_l S_l for x ∈ {g, g z̄, g z̄²}, which are real
        # matrix products of [Re x | Im x] (W, ·, 2Lc) with [Re R; Im R] (W, 2Lc, N).
        (W, two_K, N), L = ab.shape, z.shape[0]
        K = two_K // 2
        by_R = ab.new_zeros(W, two_K, N)  # [Re Σ ḡ R; Re Σ ḡ z R] = [∂/∂a; ∂/∂b]
        by_S = ab.new_zeros(W, 3 * K, N)  # [U; V; X] = Re Σ ḡ S, Re Σ ḡ z S, Re Σ ḡ z² S
        step = _pair_chunk_length(W, N, L, ab.element_size(), ctx.budget_bytes)
        buffers = ab.new_empty(W, N, 2, step), ab.new_empty(W, N, 2, step)
        for chunk in _chunks(z, step):
            zc, g = z[chunk], grad[..., chunk]
            lc = zc.shape[0]
            R, S = buffers if lc == step else (ab.new_empty(W, N, 2, lc), ab.new_empty(W, N, 2, lc))
            _pair_reciprocal(c, d, zc, R)
            torch.mul(R[:, :, 0], R[:, :, 0], out=S[:, :, 0]).addcmul_(R[:, :, 1], R[:, :, 1], value=-1)
            torch.mul(R[:, :, 0], R[:, :, 1], out=S[:, :, 1]).mul_(2)
            x = torch.cat([g, g * zc.conj(), g * zc.conj().square()], dim=1)  # (W, 3K, Lc)
            x = torch.cat([x.real, x.imag], dim=-1)
            by_R.baddbmm_(x[:, :two_K], R.view(W, N, 2 * lc).transpose(1, 2))
            by_S.baddbmm_(x, S.view(W, N, 2 * lc).transpose(1, 2))
        grad_c = -(ab * by_S[:, :two_K]).sum(1)  # −Σ_k a_k U_k + b_k V_k
        grad_d = (ab * by_S[:, K:]).sum(1)  # Σ_k a_k V_k + b_k X_k
        return by_R, grad_c, grad_d, None, None
