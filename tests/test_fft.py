"""The layer's low-memory FFT convolution against the plain one and a direct sum, in float64."""

import pytest
import torch

from s4.fft import fft_conv, fft_conv_channels_last, two_sided


def _direct(u, a, b=None):
    """y_t = Σ_{s≤t} a_{t−s} u_s (+ Σ_{s≥t} b_{s−t} u_s), loops over t: u (B, H, L), a, b (H, L)."""
    L = u.shape[-1]
    y = torch.zeros_like(u)
    for t in range(L):
        y[..., t] = (a[:, : t + 1].flip(-1) * u[..., : t + 1]).sum(-1)
        if b is not None:
            y[..., t] += (b[:, : L - t] * u[..., t:]).sum(-1)
    return y


def _inputs(B=2, H=3, L=37, seed=0):
    g = torch.Generator().manual_seed(seed)
    u = torch.randn(B, H, L, dtype=torch.float64, generator=g)
    a, b = (torch.randn(H, L, dtype=torch.float64, generator=g) for _ in range(2))
    return u, a, b


def test_two_sided_kernel_is_the_causal_plus_the_anticausal_convolution():
    u, a, b = _inputs()
    expected = _direct(u, a, b)
    assert torch.allclose(fft_conv(u, two_sided(a, b)), expected, atol=1e-10)
    assert torch.allclose(fft_conv(u, a) + fft_conv(u.flip(-1), b).flip(-1), expected, atol=1e-10)


@pytest.mark.parametrize("sided", ["causal", "two-sided"])
@pytest.mark.parametrize("chunk_bytes", [1, 10_000, 2**30])  # one channel per chunk, a few, all at once
def test_channels_last_conv_matches_plain_conv_values_and_gradients(sided, chunk_bytes):
    u, a, b = _inputs()
    k = a if sided == "causal" else two_sided(a, b)
    x = u.transpose(1, 2).contiguous().requires_grad_(True)  # (B, L, H)
    k = k.clone().requires_grad_(True)
    probe = torch.randn_like(x)  # a full upstream gradient, not a constant one
    y = fft_conv_channels_last(x, k, chunk_bytes)
    (y * probe).sum().backward()
    x_ref, k_ref = x.detach().clone().requires_grad_(True), k.detach().clone().requires_grad_(True)
    y_ref = fft_conv(x_ref.transpose(1, 2), k_ref).transpose(1, 2)
    (y_ref * probe).sum().backward()
    assert y.shape == x.shape and y.is_contiguous()
    assert torch.allclose(y, y_ref, atol=1e-10)
    assert torch.allclose(x.grad, x_ref.grad, atol=1e-10)
    assert torch.allclose(k.grad, k_ref.grad, atol=1e-10)


def test_channels_last_conv_gradcheck():
    u, a, b = _inputs(B=2, H=2, L=9)
    x = u.transpose(1, 2).contiguous().requires_grad_(True)
    for k in (a, two_sided(a, b)):
        k = k.clone().requires_grad_(True)
        assert torch.autograd.gradcheck(lambda x, k: fft_conv_channels_last(x, k, 1), (x, k))


def test_channels_last_conv_rejects_mismatched_shapes():
    with pytest.raises(ValueError, match=r"need x \(B, L, H\)"):
        fft_conv_channels_last(torch.randn(2, 10, 3), torch.randn(3, 7))
