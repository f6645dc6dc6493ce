"""Cauchy and Vandermonde backends against float64 direct sums."""

import json
import subprocess
import sys
import textwrap

import numpy as np
import pytest
import torch

from s4.cauchy import cauchy, cauchy_conj, chunk_length, resolve_backend
from s4.vandermonde import vandermonde


def _random(H=3, N=6, L=11, dtype=torch.complex128, seed=0):
    g = torch.Generator().manual_seed(seed)
    v = torch.randn(H, N, dtype=dtype, generator=g)
    w = torch.complex(-torch.rand(H, N, generator=g), torch.randn(H, N, generator=g)).to(dtype)
    z = torch.complex(torch.randn(L, generator=g) * 0.1, torch.randn(L, generator=g) * 3).to(dtype)
    return v, z, w


def _direct_sum(v, z, w):
    v, z, w = (t.detach().numpy().astype(np.complex128) for t in (v, z, w))
    out = np.zeros((v.shape[0], z.shape[0]), dtype=np.complex128)
    for h in range(v.shape[0]):
        for l_ in range(z.shape[0]):
            out[h, l_] = sum(v[h, n] / (z[l_] - w[h, n]) for n in range(v.shape[1]))
    return torch.from_numpy(out)


@pytest.mark.parametrize("backend", ["naive", "chunked", "auto"])
def test_cauchy_matches_direct_sum(backend):
    v, z, w = _random()
    assert torch.allclose(cauchy(v, z, w, backend=backend), _direct_sum(v, z, w), rtol=1e-12, atol=1e-12)


def test_cauchy_float32_matches_direct_sum():
    v, z, w = _random(dtype=torch.complex64)
    k = cauchy(v, z, w, backend="chunked")
    assert k.dtype == torch.complex64
    assert torch.allclose(k.to(torch.complex128), _direct_sum(v, z, w), rtol=1e-4, atol=1e-4)


@pytest.mark.parametrize("backend", ["naive", "chunked"])
def test_cauchy_gradients(backend):
    v, z, w = _random(H=2, N=4, L=5)
    v.requires_grad_(True)
    w.requires_grad_(True)
    # A tiny budget forces one evaluation point per chunk, so the chunk loop itself is checked.
    assert torch.autograd.gradcheck(lambda v, w: cauchy(v, z, w, backend=backend, budget_bytes=1), (v, w))


def test_cauchy_broadcasts_and_sums_gradients_back():
    v, z, w = _random(H=2, N=4, L=5)
    v4 = torch.randn(3, 2, 4, dtype=torch.complex128, requires_grad=True)
    w.requires_grad_(True)
    assert cauchy(v4, z, w).shape == (3, 2, 5)
    assert torch.autograd.gradcheck(lambda v, w: cauchy(v, z, w, backend="chunked", budget_bytes=64), (v4, w))


def test_cauchy_conj_sums_both_members_of_each_pair():
    v, z, w = _random()
    expected = _direct_sum(torch.cat([v, v.conj()], -1), z, torch.cat([w, w.conj()], -1))
    assert torch.allclose(cauchy_conj(v, z, w), expected, rtol=1e-12, atol=1e-12)


def test_vandermonde_matches_direct_sum_and_gradients():
    v, _, x = _random(H=2, N=4)
    L = 7
    expected = torch.stack(
        [torch.stack([(v[h] * torch.exp(x[h] * step)).sum() for step in range(L)]) for h in range(2)]
    )
    for backend in ["naive", "chunked"]:
        assert torch.allclose(vandermonde(v, x, L, backend=backend), expected, rtol=1e-12, atol=1e-12)
    v.requires_grad_(True)
    x.requires_grad_(True)
    assert torch.autograd.gradcheck(lambda v, x: vandermonde(v, x, L, backend="chunked", budget_bytes=1), (v, x))


def test_unknown_or_unavailable_backends_are_named():
    v, z, w = _random()
    with pytest.raises(ValueError, match="unknown Cauchy backend 'fast'"):
        cauchy(v, z, w, backend="fast")
    with pytest.raises(RuntimeError, match="Triton Cauchy backend cannot run on cpu"):
        cauchy(v, z, w, backend="triton")
    assert resolve_backend("auto", torch.device("cpu")) == "chunked"
    with pytest.raises(ValueError, match="disagree on N"):
        cauchy(v, z, w[:, :3])


def test_chunk_length_respects_the_budget():
    # (4, 128) batch × 64 terms × 8 bytes × 3 temporaries = 786,432 bytes per evaluation point.
    step = chunk_length(torch.Size([4, 128]), 64, 8001, 8, 64 * 2**20)
    assert step == 64 * 2**20 // 786_432
    assert chunk_length(torch.Size([4, 128]), 64, 10, 8, 2**40) == 10
    assert chunk_length(torch.Size([4, 128]), 64, 10, 8, 1) == 1


_MEMORY_PROBE = textwrap.dedent(
    """
    import json, resource, sys, torch
    from s4.cauchy import cauchy
    torch.set_num_threads(1)
    backend, budget = sys.argv[1], int(sys.argv[2])
    H, N, L = 64, 64, 8001
    g = torch.Generator().manual_seed(0)
    v = torch.randn(H, N, dtype=torch.complex64, generator=g, requires_grad=True)
    w = torch.complex(-torch.rand(H, N, generator=g), torch.randn(H, N, generator=g)).requires_grad_(True)
    z = torch.complex(torch.zeros(L), torch.linspace(0, 100, L))
    cauchy(v[:1, :1], z[:2], w[:1, :1], backend=backend).abs().sum().backward()  # warm up allocator and kernels
    before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024
    cauchy(v, z, w, backend=backend, budget_bytes=budget).abs().sum().backward()
    after = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024
    print(json.dumps({"peak_increase": after - before}))
    """
)


def _peak_increase(backend: str, budget: int) -> int:
    result = subprocess.run(
        [sys.executable, "-c", _MEMORY_PROBE, backend, str(budget)], capture_output=True, text=True, check=True
    )
    return json.loads(result.stdout)["peak_increase"]


def test_chunked_peak_memory_stays_within_budget():
    """The naive backend materialises 64×64×8001 complex64 terms (262 MB, several times over); the chunked one
    may add its budget plus O(H·L) outputs and gradients (a few MB) and allocator slack."""
    budget = 16 * 2**20
    outputs_and_slack = 24 * 2**20
    chunked = _peak_increase("chunked", budget)
    naive = _peak_increase("naive", budget)
    assert chunked < budget + outputs_and_slack, chunked
    assert naive > 10 * chunked, (naive, chunked)
