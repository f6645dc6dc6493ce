"""HiPPO-LegS (eq. 2) and its NPLR form (Theorem 1)."""

import pytest
import torch

from s4.hippo import diag_init, legs, nplr_legs, nplr_legs_half


def test_legs_matches_equation_2_entry_by_entry():
    A, B = legs(5)
    for n in range(5):
        assert B[n] == pytest.approx((2 * n + 1) ** 0.5)
        for k in range(5):
            expected = -(((2 * n + 1) * (2 * k + 1)) ** 0.5) if n > k else -(n + 1) if n == k else 0.0
            assert A[n, k] == pytest.approx(expected)
    assert A.dtype == B.dtype == torch.float64


@pytest.mark.parametrize("N", [4, 16, 64, 256])
def test_nplr_reconstructs_legs(N):
    A, B = legs(N)
    Lambda, P, B_diag, V = nplr_legs(N)
    assert Lambda.dtype == P.dtype == B_diag.dtype == V.dtype == torch.complex128
    rebuilt = V @ (torch.diag(Lambda) - torch.outer(P, P.conj())) @ V.conj().T
    assert (rebuilt - A).norm() / A.norm() < 1e-10
    assert rebuilt.imag.abs().max() < 1e-10
    assert (V @ B_diag - B).norm() / B.norm() < 1e-10
    assert (V.conj().T @ V - torch.eye(N, dtype=V.dtype)).abs().max() < 1e-10
    assert torch.allclose(Lambda.real, torch.full((N,), -0.5, dtype=torch.float64))


def test_half_system_keeps_one_state_per_conjugate_pair():
    Lambda_full, *_ = nplr_legs(16)
    Lambda, P, B = nplr_legs_half(16)
    assert Lambda.shape == P.shape == B.shape == (8,)
    assert (Lambda.imag > 0).all()
    both = torch.cat([Lambda, Lambda.conj()])
    assert torch.allclose(torch.sort(both.imag).values, torch.sort(Lambda_full.imag).values)


@pytest.mark.parametrize("kind", ["legs", "lin", "inv"])
def test_diag_inits_are_stable_halves(kind):
    Lambda, B = diag_init(8, kind)
    assert Lambda.shape == B.shape == (4,)
    assert (Lambda.real < 0).all()
    if kind == "lin":
        assert torch.allclose(Lambda.imag, torch.pi * torch.arange(4, dtype=torch.float64))


def test_bad_sizes_are_rejected_with_a_message():
    with pytest.raises(ValueError, match="positive integer"):
        legs(0)
    with pytest.raises(ValueError, match="even"):
        nplr_legs_half(7)
    with pytest.raises(ValueError, match="unknown diagonal initialisation"):
        diag_init(8, "fourier")
