"""HiPPO-LegS and its normal-plus-low-rank (NPLR) form (S4 paper, eq. 2 and Theorem 1)."""

from __future__ import annotations

import math

import torch
from torch import Tensor


def legs(N: int) -> tuple[Tensor, Tensor]:
    """Eq. (2), HiPPO-LegS: A[n,k] = −√(2n+1)√(2k+1) (n>k), −(n+1) (n=k), 0 (n<k); B[n] = √(2n+1).

    → A (N, N), B (N,), float64.
    """
    _check_state_size(N)
    q = torch.sqrt(2 * torch.arange(N, dtype=torch.float64) + 1)
    A = -torch.tril(q[:, None] * q[None, :], diagonal=-1) - torch.diag(torch.arange(1, N + 1, dtype=torch.float64))
    return A, q.clone()


def nplr_legs(N: int) -> tuple[Tensor, Tensor, Tensor, Tensor]:
    """Theorem 1: A = S − P Pᵀ with S normal, S = V Λ V*, so A = V (Λ − P̃ P̃*) V* with P̃ = V* P.

    For LegS, P[n] = √(n + ½) and S = −½ I + (skew-symmetric), so every eigenvalue of S has real part −½.
    → Lambda (N,), P (N,) (the rank-1 factor, so `P P*` is `outer(P, P.conj())`), B (N,), V (N, N) unitary;
    all complex128 and in the diagonal basis: `V (diag(Lambda) − P P*) V* = legs(N)[0]`, `V B = legs(N)[1]`.
    """
    A, B = legs(N)
    p = torch.sqrt(torch.arange(N, dtype=torch.float64) + 0.5)
    S = A + p[:, None] * p[None, :]
    skew = S + 0.5 * torch.eye(N, dtype=torch.float64)
    # −i·skew is Hermitian: eigh gives real frequencies and an orthonormal basis, unlike a general eig.
    frequencies, V = torch.linalg.eigh(-1j * skew.to(torch.complex128))
    Lambda = torch.complex(torch.full_like(frequencies, -0.5), frequencies)
    Vh = V.conj().T
    return Lambda, Vh @ p.to(V.dtype), Vh @ B.to(V.dtype), V


def nplr_legs_half(N: int) -> tuple[Tensor, Tensor, Tensor]:
    """The NPLR LegS system keeping one state of each conjugate pair (those with Im Λ > 0).

    Real inputs give real outputs when the dropped half is the conjugate of the kept one, so the
    kernels sum `v/(z−w) + v̄/(z−w̄)` over the N/2 kept states. → Lambda, P, B, each (N/2,) complex128.
    """
    if N % 2:
        raise ValueError(f"d_state must be even to keep one state per conjugate pair, got {N}")
    Lambda, P, B, _ = nplr_legs(N)
    keep = torch.argsort(Lambda.imag, descending=True)[: N // 2]
    keep = keep[torch.argsort(Lambda.imag[keep])]
    return Lambda[keep], P[keep], B[keep]


def diag_init(N: int, kind: str = "lin") -> tuple[Tensor, Tensor]:
    """Diagonal (S4D) initialisations, one state per conjugate pair. → Lambda (N/2,), B (N/2,) complex128.

    - "legs": the normal part of NPLR LegS (S4D-LegS), with its B.
    - "lin":  Λ_n = −½ + iπn, B_n = 1 (S4D-Lin).
    - "inv":  Λ_n = −½ + i·N/π·(N/(2n+1) − 1), B_n = 1 (S4D-Inv).
    """
    if N % 2:
        raise ValueError(f"d_state must be even to keep one state per conjugate pair, got {N}")
    n = torch.arange(N // 2, dtype=torch.float64)
    if kind == "legs":
        Lambda, _, B = nplr_legs_half(N)
        return Lambda, B
    if kind == "lin":
        imag = math.pi * n
    elif kind == "inv":
        imag = N / math.pi * (N / (2 * n + 1) - 1)
    else:
        raise ValueError(f"unknown diagonal initialisation {kind!r}; choose 'legs', 'lin' or 'inv'")
    return torch.complex(torch.full_like(n, -0.5), imag), torch.ones(N // 2, dtype=torch.complex128)


def _check_state_size(N: int) -> None:
    if not isinstance(N, int) or N < 1:
        raise ValueError(f"state size N must be a positive integer, got {N!r}")
