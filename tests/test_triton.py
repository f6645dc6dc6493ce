"""The fused Triton kernels against float64 direct sums, on the CPU through Triton's interpreter.

Triton picks compiled or interpreted kernels when they are defined, and TRITON_INTERPRET=1 would make the
Triton backend "available" on the CPU for every other test in the session. So on a machine without CUDA
this module reruns itself in a subprocess with the interpreter on. The interpreter runs float64 too, so
gradients are checked with gradcheck at full precision; sizes stay tiny because it runs every program in
Python.
"""

import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch

pytest.importorskip("triton")

from s4.cauchy import cauchy, cauchy_conj, cauchy_naive, resolve_backend, triton_available  # noqa: E402
from s4.vandermonde import vandermonde, vandermonde_naive  # noqa: E402

DEVICE = torch.device("cuda" if torch.cuda.is_available() else "cpu")
INTERPRETED = os.environ.get("TRITON_INTERPRET") == "1"
needs_triton = pytest.mark.skipif(
    not triton_available(DEVICE), reason="no CUDA here: checked by test_kernels_under_the_interpreter"
)


@pytest.mark.skipif(DEVICE.type == "cuda" or INTERPRETED, reason="the kernels run directly")
def test_kernels_under_the_interpreter():
    root = Path(__file__).resolve().parents[1]
    result = subprocess.run(
        [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", str(Path(__file__).resolve())],
        env={**os.environ, "TRITON_INTERPRET": "1"},
        cwd=root,
        capture_output=True,
        text=True,
    )
    assert result.returncode == 0, result.stdout[-4000:] + result.stderr[-4000:]
    # Only this test and the refusal test below may be skipped in there: every kernel check must have run.
    assert " passed, 2 skipped" in result.stdout, result.stdout[-2000:]


@pytest.mark.skipif(DEVICE.type == "cuda" or INTERPRETED, reason="Triton can run here")
def test_triton_on_the_cpu_without_the_interpreter_is_refused():
    v, z, w = _random()
    with pytest.raises(RuntimeError, match="Triton Cauchy backend cannot run on cpu"):
        cauchy(v, z, w, backend="triton")
    with pytest.raises(RuntimeError, match="cannot run on cpu"):
        vandermonde(v, w, 4, backend="triton")


def _random(batch=(3,), N=5, L=11, dtype=torch.complex128, seed=0):
    g = torch.Generator().manual_seed(seed)
    v = torch.randn(*batch, N, dtype=dtype, generator=g)
    w = torch.complex(-torch.rand(*batch, N, generator=g), torch.randn(*batch, N, generator=g)).to(dtype)
    z = torch.complex(torch.randn(L, generator=g) * 0.1, torch.randn(L, generator=g) * 3).to(dtype)
    return v.to(DEVICE), z.to(DEVICE), w.to(DEVICE)


def _direct_sum(v, z, w):
    """Σ_n v_n/(z_l − w_n), one scalar term at a time in float64: independent of every vectorised route."""
    v, z, w = (t.detach().cpu().to(torch.complex128) for t in (v, z, w))
    out = torch.zeros(v.shape[0], z.shape[0], dtype=torch.complex128)
    for b in range(v.shape[0]):
        for l_ in range(z.shape[0]):
            out[b, l_] = sum(v[b, n] / (z[l_] - w[b, n]) for n in range(v.shape[1]))
    return out


@needs_triton
def test_cauchy_matches_direct_sum_in_float64_and_float32():
    # N = 40 > one BLOCK_N tile and L = 150 > one BLOCK_L tile, so the masked edges of both loops are exercised.
    v, z, w = _random(N=40, L=150)
    expected = _direct_sum(v, z, w)
    assert torch.allclose(cauchy(v, z, w, backend="triton").cpu(), expected, rtol=1e-12, atol=1e-12)
    k32 = cauchy(v.to(torch.complex64), z.to(torch.complex64), w.to(torch.complex64), backend="triton")
    assert k32.dtype == torch.complex64
    assert torch.allclose(k32.cpu().to(torch.complex128), expected, rtol=1e-4, atol=1e-4)


@needs_triton
def test_cauchy_gradients_match_finite_differences():
    v, z, w = _random(batch=(2,), N=3, L=4)
    v.requires_grad_(True)
    w.requires_grad_(True)
    assert torch.autograd.gradcheck(lambda v, w: cauchy(v, z, w, backend="triton"), (v, w))


@needs_triton
def test_cauchy_broadcasts_and_sums_gradients_back():
    """v with an extra leading batch dimension against a shared w, as in dplr_kernel's four products."""
    v, z, w = _random(batch=(2,), N=3, L=5)
    v4 = torch.randn(3, 2, 3, dtype=torch.complex128, device=DEVICE, requires_grad=True)
    w.requires_grad_(True)
    k = cauchy(v4, z, w, backend="triton")
    assert torch.allclose(k, cauchy_naive(v4, z, w), rtol=1e-12, atol=1e-12)
    assert torch.autograd.gradcheck(lambda v, w: cauchy(v, z, w, backend="triton"), (v4, w))


@needs_triton
def test_cauchy_takes_per_row_evaluation_points():
    v, _, w = _random(batch=(2,), N=3)
    z = torch.complex(torch.randn(2, 7), torch.randn(2, 7)).to(torch.complex128).to(DEVICE)
    assert torch.allclose(cauchy(v, z, w, backend="triton"), cauchy_naive(v, z, w), rtol=1e-12, atol=1e-12)


@needs_triton
def test_cauchy_conj_on_triton_matches_the_chunked_pair_path():
    v, z, w = _random(batch=(2,), N=4, L=9)
    v4 = torch.randn(4, 2, 4, dtype=torch.complex128, device=DEVICE)
    expected = cauchy_conj(v4.cpu(), z.cpu(), w.cpu(), backend="chunked")
    assert torch.allclose(cauchy_conj(v4, z, w, backend="triton").cpu(), expected, rtol=1e-12, atol=1e-12)


@needs_triton
def test_vandermonde_matches_direct_sum_and_gradients():
    v, _, x = _random(batch=(2,), N=40)
    L = 150
    expected = torch.stack(
        [torch.stack([(v[b] * torch.exp(x[b] * step)).sum() for step in range(L)]) for b in range(2)]
    )
    assert torch.allclose(vandermonde(v, x, L, backend="triton"), expected, rtol=1e-12, atol=1e-12)
    assert torch.allclose(vandermonde(v, x, L, backend="triton"), vandermonde_naive(v, x, L), rtol=1e-12, atol=1e-12)
    v, x = v[:, :3].clone().requires_grad_(True), x[:, :3].clone().requires_grad_(True)
    assert torch.autograd.gradcheck(lambda v, x: vandermonde(v, x, 6, backend="triton"), (v, x))
    v1 = torch.randn(3, dtype=torch.complex128, device=DEVICE, requires_grad=True)  # broadcast over x's rows
    assert torch.autograd.gradcheck(lambda v, x: vandermonde(v, x, 6, backend="triton"), (v1, x))


@needs_triton
def test_auto_never_picks_triton_on_the_cpu():
    assert resolve_backend("auto", torch.device("cpu")) == "chunked"
