"""SSM convolution kernels K_k = C̄ Ā^k B̄, k < L (S4 paper, eq. 4-5), three ways.

- `dplr_kernel`: Algorithm 1. The truncated generating function at the L-th roots of unity, the bilinear
  transform, the Woodbury identity for the low-rank term, four Cauchy products, an inverse FFT.
- `diag_kernel`: S4D. Vandermonde products with ZOH or bilinear discretisation.
- `naive_kernel`: dense Ā, B̄ and the powers Ā^k B̄ (LSSL-style). O(N²L): the reference for tests.

Systems keep one state of each conjugate pair (N/2 states): sums over states run over both members of
each pair, so kernels are real. `pair_expand` builds the full N-state system for the dense routes.
"""

from __future__ import annotations

import math

import torch
from torch import Tensor
from torch.autograd.function import once_differentiable

from s4.cauchy import cauchy_conj
from s4.vandermonde import vandermonde_conj

DISCRETIZATIONS = ("zoh", "bilinear")


def discretize_bilinear(A: Tensor, B: Tensor, dt: Tensor) -> tuple[Tensor, Tensor]:
    """Eq. (3): Ā = (I − Δ/2·A)⁻¹ (I + Δ/2·A),  B̄ = (I − Δ/2·A)⁻¹ Δ·B.

    A (..., N, N), B (..., N), dt (...) → Ā (..., N, N), B̄ (..., N). Dense: reference use only.
    """
    eye = torch.eye(A.shape[-1], dtype=A.dtype, device=A.device)
    half = dt[..., None, None] / 2 * A
    inverse = torch.linalg.inv(eye - half)
    return inverse @ (eye + half), (inverse @ (dt[..., None] * B)[..., None])[..., 0]


def discretize_zoh(A: Tensor, B: Tensor, dt: Tensor) -> tuple[Tensor, Tensor]:
    """Zero-order hold: Ā = exp(ΔA), B̄ = A⁻¹(exp(ΔA) − I) B, both read off one block exponential
    exp(Δ·[[A, B], [0, 0]]) = [[Ā, B̄], [0, 1]], which needs no inverse of A.

    A (..., N, N), B (..., N), dt (...) → Ā (..., N, N), B̄ (..., N). Dense: reference use only.
    """
    N = A.shape[-1]
    block = torch.zeros(*A.shape[:-2], N + 1, N + 1, dtype=A.dtype, device=A.device)
    block[..., :N, :N] = A
    block[..., :N, N] = B
    exponential = torch.linalg.matrix_exp(dt[..., None, None] * block)
    return exponential[..., :N, :N], exponential[..., :N, N]


def naive_kernel(A_bar: Tensor, B_bar: Tensor, C: Tensor, L: int) -> Tensor:
    """K_k = C Ā^k B̄ for k < L, by doubling the Krylov block [B̄, ĀB̄, …] (as LSSL does).

    A_bar (..., N, N), B_bar (..., N), C (..., N) → (..., L), real part for complex systems.
    """
    krylov = B_bar[..., None]
    power = A_bar
    while krylov.shape[-1] < L:
        krylov = torch.cat([krylov, power @ krylov], dim=-1)
        power = power @ power
    K = (C[..., None, :] @ krylov[..., :L])[..., 0, :]
    return K.real if K.is_complex() else K


def pair_expand(Lambda: Tensor, P: Tensor | None, B: Tensor, C: Tensor) -> tuple[Tensor, Tensor, Tensor]:
    """The full N-state system in the diagonal basis from one state per conjugate pair.

    Lambda, P, B, C (..., N/2) → A = diag([Λ, Λ̄]) − p p* with p = [P, P̄] (..., N, N), B (..., N), C (..., N).
    """
    full = lambda t: torch.cat([t, t.conj()], dim=-1)  # noqa: E731
    A = torch.diag_embed(full(Lambda))
    if P is not None:
        p = full(P)
        A = A - p[..., :, None] * p[..., None, :].conj()
    return A, full(B), full(C)


def retruncate_C(
    Lambda: Tensor, P: Tensor, B: Tensor, C: Tensor, dt: Tensor, L_from: int | None, L_to: int | None
) -> Tensor:
    """Move C between truncation lengths: C̃_to = C̃_from (I − Ā^L_from)⁻¹ (I − Ā^L_to) (Algorithm 1, step 1).

    `None` means no truncation (the plain C of the recurrence). Dense and O(N³ log L): used once when a layer
    sets up its recurrent view or reaches past its kernel length, never per step.
    Lambda, P, B, C (H, N/2), dt (H,) → C (H, N/2).
    """
    A, _, C_full = pair_expand(Lambda, P, B, C)
    A_bar, _ = discretize_bilinear(A, torch.zeros_like(A[..., 0]), dt.to(A.real.dtype))
    eye = torch.eye(A.shape[-1], dtype=A.dtype, device=A.device)
    row = C_full[..., None, :]
    if L_from is not None:
        row = torch.linalg.solve(eye - torch.linalg.matrix_power(A_bar, L_from), row, left=False)
    if L_to is not None:
        row = row @ (eye - torch.linalg.matrix_power(A_bar, L_to))
    return row[..., 0, : C.shape[-1]]


def dplr_kernel(
    Lambda: Tensor, P: Tensor, B: Tensor, C_tilde: Tensor, dt: Tensor, L: int, backend: str = "auto"
) -> Tensor:
    """Algorithm 1: the length-L kernel of the bilinear-discretised SSM with A = Λ − P P*.

    With z_j = exp(−2πij/L) and C̃ = C(I − Ā^L), the truncated generating function is
        K̂(z) = C̃ (I − Āz)⁻¹ B̄ = 2/(1+z) · C̃ (g(z) − A)⁻¹ B,   g(z) = 2/Δ · (1−z)/(1+z)   (Lemma C.3)
    and the Woodbury identity turns the resolvent into four Cauchy products (Lemma C.2). At the roots of
    unity (1−z)/(1+z) = i·tan(πj/L), and the kernel is real, so j = 0 … ⌊L/2⌋ and an inverse rFFT suffice.
    Lambda, P, B, C_tilde (H, N/2), dt (H,) → K (H, L), real.
    """
    real = Lambda.real.dtype
    j = torch.arange(L // 2 + 1, device=Lambda.device, dtype=real)
    half_angle = math.pi * j / L
    at_nyquist = L % 2 == 0
    tangent = torch.tan(half_angle)
    if at_nyquist:
        tangent[-1] = 0  # z = −1 is a pole of g; its value is filled in from the limit below
    s = torch.complex(torch.zeros_like(tangent), tangent)
    half_dt = (dt / 2)[:, None]
    v = torch.stack([C_tilde * B, C_tilde * P, P.conj() * B, P.conj() * P])
    r = cauchy_conj(v, s, Lambda * half_dt, backend=backend)
    resolvent = _Woodbury.apply(r, half_dt)
    two_over_one_plus_z = torch.polar(1 / torch.cos(half_angle), half_angle)
    k_hat = resolvent * two_over_one_plus_z
    if at_nyquist:
        # As z → −1, 2/(1+z) · (g − A)⁻¹ → Δ/2 · I, so K̂(−1) = Δ/2 · Σ C̃ B over both members of each pair.
        k_hat[..., -1] = half_dt[:, 0] * 2 * (C_tilde * B).sum(-1).real
    return torch.fft.irfft(k_hat, n=L)


class _Woodbury(torch.autograd.Function):
    """Lemma C.2 after the Cauchy products: R = h·r₀ − h²·r₁·r₂ / (1 + h·r₃), with h = Δ/2.

    r (4, H, F) complex, h (H, 1) real → R (H, F). Written out so that autograd keeps r alone for the backward
    pass: plain operators also kept three (H, F) intermediates (the kernel's graph held 63 MiB instead of 40 at
    H = 128, L = 16000).
    """

    @staticmethod
    def forward(ctx, r: Tensor, h: Tensor) -> Tensor:
        ctx.save_for_backward(r, h)
        # In place where possible: each temporary is (H, F), and fewer of them leave fewer holes in the heap.
        correction = (r[1] * r[2]).mul_(h * h).div_((r[3] * h).add_(1))
        return correction.neg_().add_(r[0] * h)

    @staticmethod
    @once_differentiable
    def backward(ctx, grad: Tensor):
        # R is holomorphic in each r_i, so PyTorch wants grad · conj(∂R/∂r_i); h is real: Re Σ grad · conj(∂R/∂h).
        r, h = ctx.saved_tensors
        # One (H, F) row at a time, into the output: no stacked (4, H, F) temporaries.
        grad_r = torch.empty_like(r)
        torch.mul(grad, h, out=grad_r[0])
        over_D = (1 / (1 + h * r[3])).conj_physical()
        g_over_D = grad * over_D
        torch.mul(g_over_D, r[2].conj(), out=grad_r[1]).mul_(-h * h)
        torch.mul(g_over_D, r[1].conj(), out=grad_r[2]).mul_(-h * h)
        product = (r[1] * r[2]).conj_physical_().mul_(over_D)  # conj(r₁r₂/D)
        torch.mul(g_over_D, product, out=grad_r[3]).mul_(h * h * h)
        # conj(∂R/∂h) = conj(r₀ − 2h·r₁r₂/D + h²·r₁r₂·r₃/D²), built in place in the (H, F) buffers at hand
        by_h = g_over_D.copy_(product).mul_(over_D).mul_(r[3].conj()).mul_(h * h)
        by_h.sub_(product.mul_(2 * h)).add_(r[0].conj()).mul_(grad)
        grad_h = by_h.real.sum(-1, keepdim=True)
        return grad_r, grad_h


def diag_bar(Lambda: Tensor, B: Tensor, dt: Tensor, discretization: str = "zoh") -> tuple[Tensor, Tensor]:
    """Elementwise discretisation of a diagonal SSM. Lambda, B (H, N/2), dt (H,) → Ā, B̄ (H, N/2).

    ZOH: Ā = exp(ΔΛ), B̄ = (exp(ΔΛ) − 1)/Λ · B.   Bilinear: Ā = (1 + ΔΛ/2)/(1 − ΔΛ/2), B̄ = Δ/(1 − ΔΛ/2) · B.
    """
    dtA = Lambda * dt[:, None]
    if discretization == "zoh":
        A_bar = torch.exp(dtA)
        return A_bar, (A_bar - 1) / Lambda * B
    if discretization == "bilinear":
        return (1 + dtA / 2) / (1 - dtA / 2), dt[:, None] / (1 - dtA / 2) * B
    raise ValueError(f"unknown discretization {discretization!r}; choose one of {', '.join(DISCRETIZATIONS)}")


def diag_kernel(
    Lambda: Tensor,
    B: Tensor,
    C: Tensor,
    dt: Tensor,
    L: int,
    discretization: str = "zoh",
    backend: str = "auto",
) -> Tensor:
    """S4D kernel K_k = 2·Re Σ_n C_n B̄_n Ā_n^k, a Vandermonde product (Ā^k = exp(k·log Ā)).

    log Ā is formed in float64 (ZOH: ΔΛ; bilinear: log of the Cayley map): `vandermonde_conj` forms the block
    phases k₀·log Ā from it in float64, so a float32 model's kernel keeps its phase accuracy at every k < L.
    Lambda, B, C (H, N/2), dt (H,) → K (H, L), real.
    """
    _, B_bar = diag_bar(Lambda, B, dt, discretization)
    wide = torch.complex128
    log_A_bar = Lambda.to(wide) * dt.double()[:, None]
    if discretization == "bilinear":
        log_A_bar = torch.log(diag_bar(Lambda.to(wide), B.to(wide), dt.double(), discretization)[0])
    return vandermonde_conj(C * B_bar, log_A_bar, L, backend=backend)
