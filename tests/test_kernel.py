"""Algorithm 1 and the S4D kernel against the dense C̄ Ā^k B̄ reference."""

import pytest
import torch

from s4.hippo import diag_init, nplr_legs_half
from s4.kernel import (
    diag_kernel,
    discretize_bilinear,
    discretize_zoh,
    dplr_kernel,
    naive_kernel,
    pair_expand,
    retruncate_C,
)

DTS = torch.tensor([1e-3, 1e-2, 1e-1], dtype=torch.float64)


def _dplr_system(N, seed=0):
    Lambda, P, B = (t.expand(len(DTS), -1).clone() for t in nplr_legs_half(N))
    g = torch.Generator().manual_seed(seed)
    C = torch.complex(torch.randn(len(DTS), N // 2, generator=g), torch.randn(len(DTS), N // 2, generator=g))
    return Lambda, P, B, C.to(torch.complex128)


def _relative_error(K, reference):
    return ((K.double() - reference).norm() / reference.norm()).item()


def test_dense_bilinear_and_zoh_agree_to_third_order():
    """Bilinear is the (1,1) Padé approximant of exp(ΔA): Ā differs from ZOH's by O(Δ³), so halving Δ
    divides the gap by about 8. An independent check of both dense discretisations."""
    Lambda, P, B, _ = _dplr_system(8)
    A, B_full, _ = pair_expand(Lambda[:1], P[:1], B[:1], B[:1])

    def gap(dt):
        dt = torch.tensor([dt], dtype=torch.float64)
        return (discretize_bilinear(A, B_full, dt)[0] - discretize_zoh(A, B_full, dt)[0]).abs().max()

    assert 7 < gap(1e-3) / gap(5e-4) < 9
    assert gap(1e-4) < 1e-8


@pytest.mark.parametrize("N", [16, 64])
@pytest.mark.parametrize("L", [16, 1000, 4096])
def test_dplr_kernel_matches_dense_powers(N, L):
    Lambda, P, B, C = _dplr_system(N)
    A, B_full, C_full = pair_expand(Lambda, P, B, C)
    reference = naive_kernel(*discretize_bilinear(A, B_full, DTS), C_full, L)
    C_tilde = retruncate_C(Lambda, P, B, C, DTS, None, L)
    assert _relative_error(dplr_kernel(Lambda, P, B, C_tilde, DTS, L), reference) < 1e-8
    single = [t.to(torch.complex64) for t in (Lambda, P, B, C_tilde)]
    K32 = dplr_kernel(*single, DTS.float(), L)
    assert K32.dtype == torch.float32
    assert _relative_error(K32, reference) < 1e-4


@pytest.mark.parametrize("L", [15, 16])
def test_dplr_kernel_odd_and_even_lengths(L):
    # Even L evaluates the generating function at z = −1, where it is filled in from its limit.
    Lambda, P, B, C = _dplr_system(16, seed=1)
    A, B_full, C_full = pair_expand(Lambda, P, B, C)
    reference = naive_kernel(*discretize_bilinear(A, B_full, DTS), C_full, L)
    C_tilde = retruncate_C(Lambda, P, B, C, DTS, None, L)
    assert _relative_error(dplr_kernel(Lambda, P, B, C_tilde, DTS, L, backend="naive"), reference) < 1e-10


@pytest.mark.parametrize("N", [16, 64])
@pytest.mark.parametrize("L", [16, 1000, 4096])
@pytest.mark.parametrize("discretization", ["zoh", "bilinear"])
def test_diag_kernel_matches_dense_powers(N, L, discretization):
    Lambda, B = (t.expand(len(DTS), -1).clone() for t in diag_init(N, "legs"))
    C = _dplr_system(N)[3]
    A, B_full, C_full = pair_expand(Lambda, None, B, C)
    discretize = discretize_zoh if discretization == "zoh" else discretize_bilinear
    reference = naive_kernel(*discretize(A, B_full, DTS), C_full, L)
    assert _relative_error(diag_kernel(Lambda, B, C, DTS, L, discretization), reference) < 1e-8
    single = [t.to(torch.complex64) for t in (Lambda, B, C)]
    assert _relative_error(diag_kernel(*single, DTS.float(), L, discretization), reference) < 1e-4


def test_retruncate_round_trips():
    Lambda, P, B, C = _dplr_system(16)
    C_tilde = retruncate_C(Lambda, P, B, C, DTS, None, 500)
    assert torch.allclose(retruncate_C(Lambda, P, B, C_tilde, DTS, 500, None), C, atol=1e-10)
    doubled = retruncate_C(Lambda, P, B, C_tilde, DTS, 500, 1000)
    assert torch.allclose(doubled, retruncate_C(Lambda, P, B, C, DTS, None, 1000), atol=1e-10)


def test_unknown_discretization_is_named():
    Lambda, B = diag_init(4, "lin")
    with pytest.raises(ValueError, match="unknown discretization 'euler'"):
        diag_kernel(Lambda[None], B[None], B[None], DTS[:1], 8, "euler")


@pytest.mark.parametrize("L", [15, 16])
def test_dplr_kernel_gradients(L):
    """Gradients through the Cauchy products and the hand-written Woodbury backward (float64 gradcheck)."""
    Lambda, P, B, C = (t[:2].clone().requires_grad_(True) for t in _dplr_system(4, seed=2))
    dt = DTS[1:].clone().requires_grad_(True)
    assert torch.autograd.gradcheck(
        lambda *system: dplr_kernel(*system[:4], system[4], L, backend="chunked"), (Lambda, P, B, C, dt)
    )


@pytest.mark.parametrize("discretization", ["zoh", "bilinear"])
def test_diag_kernel_gradients(discretization):
    Lambda, B = (t.expand(2, -1).clone().requires_grad_(True) for t in diag_init(4, "lin"))
    C = _dplr_system(4)[3][:2].clone().requires_grad_(True)
    dt = DTS[1:].clone().requires_grad_(True)
    assert torch.autograd.gradcheck(
        lambda Lambda, B, C, dt: diag_kernel(Lambda, B, C, dt, 150, discretization), (Lambda, B, C, dt)
    )
