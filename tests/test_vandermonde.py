"""The S4D kernel's conjugate-pair Vandermonde product against float64 direct sums."""

import pytest
import torch

import s4.vandermonde as vandermonde_module
from s4.vandermonde import vandermonde_conj, vandermonde_naive


def _system(H=3, N=5, seed=0, decay=0.05, dtype=torch.complex128):
    g = torch.Generator().manual_seed(seed)
    v = torch.randn(H, N, dtype=dtype, generator=g)
    real, imag = -decay * torch.rand(H, N, generator=g, dtype=torch.float64), torch.randn(H, N, generator=g).double()
    return v, torch.complex(real, imag)


def _direct(v, x, L):
    """2·Re Σ_n v_n exp(x_n l), one l at a time."""
    v, x = v.detach().to(torch.complex128), x.detach().to(torch.complex128)
    return torch.stack([2 * (v * torch.exp(x * step)).sum(-1).real for step in range(L)], -1)


@pytest.mark.parametrize("backend", ["naive", "chunked"])
@pytest.mark.parametrize("L, block", [(150, 64), (150, 7), (150, 1), (40, 64), (128, 64)])
def test_matches_direct_sum(backend, L, block):
    v, x = _system()
    K = vandermonde_conj(v, x, L, backend=backend, block=block)
    assert K.shape == (3, L) and K.dtype == torch.float64
    assert torch.allclose(K, _direct(v, x, L), rtol=1e-12, atol=1e-12)


def test_one_block_per_chunk_gives_the_same_values_and_gradients(monkeypatch):
    """A budget of one byte walks the blocks one chunk at a time in both passes (the layer sizes take several)."""
    v, x = _system()
    monkeypatch.setattr(vandermonde_module, "_PHASE_BUDGET_BYTES", 1)
    assert torch.allclose(vandermonde_conj(v, x, 150, block=7), _direct(v, x, 150), rtol=1e-12, atol=1e-12)
    v, x = v.clone().requires_grad_(True), x.clone().requires_grad_(True)
    assert torch.autograd.gradcheck(lambda v, x: vandermonde_conj(v, x, 23, backend="chunked", block=5), (v, x))


def test_chunked_broadcasts_and_matches_the_materialising_reference():
    v, x = _system(H=4, N=6, seed=1)
    K = vandermonde_conj(v[:1], x, 300, backend="chunked")  # one v row shared by four x rows
    assert torch.allclose(K, 2 * vandermonde_naive(v[:1], x, 300).real, rtol=1e-10, atol=1e-10)


@pytest.mark.parametrize("share_v", [False, True])
def test_chunked_gradcheck(share_v):
    v, x = _system(H=2, N=3)
    v = (v[:1] if share_v else v).clone().requires_grad_(True)
    x = x.clone().requires_grad_(True)
    assert torch.autograd.gradcheck(lambda v, x: vandermonde_conj(v, x, 23, backend="chunked", block=5), (v, x))


def test_float32_keeps_the_phase_over_long_kernels():
    """16000 steps of slowly decaying modes: exp(x·l) taken in float32 at large l loses |Im x|·l·2⁻²⁴ of phase
    (the plain float32 route below is off by ~1e-3); the float64 block phases keep the kernel within 2e-5."""
    v, x = _system(H=2, N=8, decay=1e-4)
    L = 16000
    reference = _direct(v, x, L)
    K = vandermonde_conj(v.to(torch.complex64), x, L, backend="chunked")
    plain = 2 * vandermonde_naive(v.to(torch.complex64), x.to(torch.complex64), L).real
    error = lambda K: ((K.double() - reference).norm() / reference.norm()).item()  # noqa: E731
    assert K.dtype == torch.float32
    assert error(K) < 2e-5 and error(plain) > 30 * error(K)


def test_mixed_precision_gradients_match_float64():
    v, x = _system(H=2, N=4)
    weights = torch.randn(2, 500, dtype=torch.float64)
    grads = []
    for dtype in (torch.complex64, torch.complex128):
        v_ = v.to(dtype).requires_grad_(True)
        x_ = x.clone().requires_grad_(True)
        (vandermonde_conj(v_, x_, 500, backend="chunked") * weights.to(dtype.to_real())).sum().backward()
        grads.append((v_.grad.to(torch.complex128), x_.grad))
    (v32, x32), (v64, x64) = grads
    assert ((v32 - v64).norm() / v64.norm()).item() < 1e-5
    assert ((x32 - x64).norm() / x64.norm()).item() < 1e-5


def test_bad_arguments_are_named():
    v, x = _system()
    with pytest.raises(ValueError, match="disagree on N"):
        vandermonde_conj(v, x[:, :2], 10)
    with pytest.raises(ValueError, match="must be positive"):
        vandermonde_conj(v, x, 0)
