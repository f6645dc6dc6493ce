"""The conjugate-pair fast path of cauchy_conj against the naive sum over both members of each pair."""

import pytest
import torch

from s4.cauchy import _conj_pairs, cauchy_conj, cauchy_naive


def _pairs_naive(v, z, w):
    v, w = torch.broadcast_tensors(v, w)
    return cauchy_naive(torch.cat([v, v.conj()], -1), z, torch.cat([w, w.conj()], -1))


def _inputs(v_batch, w_batch, N=3, L=5, imaginary_z=True, seed=0):
    g = torch.Generator().manual_seed(seed)
    v = torch.randn(*v_batch, N, dtype=torch.complex128, generator=g)
    w = torch.complex(
        -torch.rand(*w_batch, N, generator=g, dtype=torch.float64),
        torch.randn(*w_batch, N, generator=g, dtype=torch.float64),
    )
    real = (
        torch.zeros(L, dtype=torch.float64) if imaginary_z else torch.randn(L, generator=g, dtype=torch.float64) * 0.1
    )
    z = torch.complex(real, 3 * torch.randn(L, generator=g, dtype=torch.float64))
    return v.requires_grad_(True), z, w.requires_grad_(True)


SHAPES = [((4, 3), (3,)), ((3,), (3,)), ((2, 1), (1, 3)), ((), (2,))]


@pytest.mark.parametrize("imaginary_z", [True, False])
@pytest.mark.parametrize(("v_batch", "w_batch"), SHAPES)
def test_pairs_match_naive_values_and_gradients(v_batch, w_batch, imaginary_z):
    v, z, w = _inputs(v_batch, w_batch, imaginary_z=imaginary_z)
    expected = _pairs_naive(v, z, w)
    k = cauchy_conj(v, z, w, backend="chunked")
    assert k.shape == expected.shape
    assert torch.allclose(k, expected, rtol=1e-11, atol=1e-11)
    # A budget of two evaluation points per chunk (five (W, N) float64 planes each) leaves a partial last chunk.
    W = w.reshape(-1, w.shape[-1]).shape[0] if len(w_batch) >= len(v_batch) - 1 else v.numel() // v.shape[-1]
    budget = 2 * W * v.shape[-1] * 8 * 5
    assert torch.allclose(_conj_pairs(v, z, w, budget), expected, rtol=1e-11, atol=1e-11)
    assert torch.autograd.gradcheck(lambda v, w: _conj_pairs(v, z, w, budget), (v, w))


def test_pairs_in_float32_stay_close_to_float64():
    v, z, w = _inputs((4, 3), (3,), N=16, L=200)
    expected = _pairs_naive(v, z, w).detach()
    k = cauchy_conj(v.detach().to(torch.complex64), z.to(torch.complex64), w.detach().to(torch.complex64), "chunked")
    assert k.dtype == torch.complex64
    assert torch.allclose(k.to(torch.complex128), expected, rtol=1e-4, atol=1e-4 * expected.abs().max().item())
