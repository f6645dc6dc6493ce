"""The S4 layer: recurrent vs convolutional views, dt rescaling, shapes, dtypes and errors."""

import copy

import pytest
import torch
import torch.nn.functional as F

from s4 import S4
from s4.fft import fft_conv
from s4.kernel import discretize_bilinear, discretize_zoh, naive_kernel, pair_expand

SCALE_44K = 16000 / 44100  # dt_scale of a 44.1 kHz input to a model trained at 16 kHz: every Δ shrinks


def _relative_error(a, b):
    return ((a - b).norm() / b.norm()).item()


@pytest.mark.parametrize("mode", ["dplr", "diag"])
@pytest.mark.parametrize("dt_scale", [1.0, 2.0, SCALE_44K])
def test_step_matches_forward(mode, dt_scale):
    torch.manual_seed(0)
    layer = S4(8, d_state=16, mode=mode, l_max=16000).eval()
    x = torch.randn(2, 512, 8)
    with torch.no_grad():
        y = layer(x, dt_scale=dt_scale)
        state = layer.initial_state(2)
        steps = []
        for t in range(x.shape[1]):
            y_t, state = layer.step(x[:, t], state, dt_scale=dt_scale)
            steps.append(y_t)
    assert y.shape == (2, 512, 8) and y.dtype == torch.float32
    assert _relative_error(torch.stack(steps, 1), y) < 1e-4


def test_fft_conv_is_the_causal_convolution():
    u, k = torch.randn(2, 3, 50, dtype=torch.float64), torch.randn(3, 50, dtype=torch.float64)
    direct = torch.stack(
        [torch.stack([(k[h, : t + 1].flip(0) * u[:, h, : t + 1]).sum(-1) for t in range(50)], -1) for h in range(3)],
        1,
    )
    assert torch.allclose(fft_conv(u, k), direct, atol=1e-10)


def _kernels_at_two_rates(mode, dt, L=4000):
    torch.manual_seed(0)
    layer = S4(4, d_state=16, mode=mode, l_max=L, dt_min=dt, dt_max=dt)
    with torch.no_grad():
        return layer.kernel(L), layer.kernel(L // 2, dt_scale=2.0), layer.kernel(L // 2)


@pytest.mark.parametrize("mode", ["dplr", "diag"])
def test_half_rate_kernel_samples_the_same_continuous_kernel(mode):
    """kernel(L/2, dt_scale=2)[j] ≈ 2·kernel(L)[2j]: both sample Δ·h(t), h(t) = C e^{tA} B, at t ≈ 2jΔ.

    Tolerance. Both discretisations give K_k ≈ Δ·h((k + ½)Δ) (ZOH integrates h over a step, bilinear is the
    trapezoid), so the two sides sit half a fine step apart: their gap is ≈ (Δ/2)·|h'|/|h| relative. For
    d_state = 16, h changes on a scale of ~1/60 s (|Im Λ| ≲ 60), so at Δ = 1e-4 the gap is ≲ 0.3%; 1% leaves
    room for the O((Δλ)²) discretisation error. Without re-discretising, the same comparison is off by ~100%.
    """
    full, half, unrescaled = _kernels_at_two_rates(mode, 1e-4)
    assert half.shape == (4, 2000)
    assert _relative_error(half, 2 * full[:, ::2]) < 1e-2
    assert _relative_error(unrescaled, 2 * full[:, ::2]) > 0.5


@pytest.mark.parametrize(("mode", "tolerance"), [("diag", 1e-4), ("dplr", 5e-3)])
def test_half_rate_kernel_integrates_over_two_fine_steps(mode, tolerance):
    """The sharper form of the same fact: ZOH's K_k = ∫ h over [kΔ, (k+1)Δ], so a step of 2Δ gives exactly
    K_2j + K_2j+1 (float32 round-off only); bilinear matches it to second order, O((Δλ)²) ≈ (1e-3·60)²."""
    full, half, _ = _kernels_at_two_rates(mode, 1e-3)
    assert _relative_error(half, full[:, ::2] + full[:, 1::2]) < tolerance


def test_layer_kernel_equals_dense_reference():
    """Algorithm 1 (generating function, Woodbury, Cauchy) against the dense powers of Ā in float64, at the
    training step, at Δ·2, and past the truncation horizon; backend "dense" routes the layer through the same."""
    torch.manual_seed(0)
    layer = S4(3, d_state=8, mode="dplr", l_max=64).double()
    dense = S4(3, d_state=8, mode="dplr", l_max=64, backend="dense").double()
    dense.load_state_dict(layer.state_dict())
    with torch.no_grad():
        for L, dt_scale in ((64, 1.0), (32, 2.0), (150, 1.0)):
            reference = layer.ssm.dense_kernel(L, dt_scale)
            assert reference.dtype == torch.float64 and reference.shape == (3, L)
            assert _relative_error(layer.kernel(L, dt_scale), reference) < 1e-4
            torch.testing.assert_close(dense.kernel(L, dt_scale), reference)


def test_kernel_longer_than_the_horizon_is_extended_exactly():
    torch.manual_seed(0)
    layer = S4(2, d_state=8, l_max=100)
    with torch.no_grad():
        long = layer.kernel(300)
        state = layer.initial_state(1)
        impulse = []
        for t in range(300):
            y, state = layer.ssm.step(torch.tensor([[1.0, 1.0]]) if t == 0 else torch.zeros(1, 2), state)
            impulse.append(y[0])
    assert _relative_error(long, torch.stack(impulse, -1)) < 1e-4


def test_bidirectional_layer():
    layer = S4(4, d_state=8, bidirectional=True, l_max=64)
    x = torch.randn(2, 64, 4, requires_grad=True)
    y = layer(x)
    assert y.shape == x.shape
    # The output at t = 0 depends on the future: a causal layer's would not.
    y[:, 0].sum().backward()
    assert x.grad[:, -1].abs().sum() > 0
    assert layer.kernel(64).shape == (2, 4, 64)
    with pytest.raises(ValueError, match="no recurrent"):
        layer.initial_state(1)


def test_causal_layer_does_not_see_the_future():
    layer = S4(4, d_state=8, l_max=64)
    x = torch.randn(1, 64, 4, requires_grad=True)
    layer(x)[:, 10].sum().backward()
    # FFT round-off leaks ~1e-9 into the future; a non-causal layer would leak O(1).
    assert x.grad[:, 11:].abs().max() < 1e-6 * x.grad[:, :11].abs().max()


def test_glu_and_bf16_autocast_keep_the_ssm_in_float32():
    """Under bf16 autocast the SSM, D and GELU run in float32 exactly as without it; only the output mixing runs
    in bf16 (unit roundoff u = 2⁻⁸). Its error bound, element by element, from the float32 run's values g, z = Wg + b:
    rounding g and W costs ≤ (2u + u²)|W||g|, rounding b and z ≤ u(|b| + |z|): |Δz| ≤ 3u(|W||g| + |b|) to first
    order. GLU a·σ(c) then adds σ(c)|Δa| + |a||Δc|/4 (σ' ≤ 1/4), and its bf16 sigmoid and product ≤ 3u|a·σ(c)|."""
    torch.manual_seed(0)
    layer = S4(4, d_state=8, glu=True, l_max=32)
    x = torch.randn(2, 32, 4)
    mixed = []  # what reaches the output mixing: GELU of the SSM's output plus D·x
    layer.output_linear.register_forward_pre_hook(lambda module, args: mixed.append(args[0].detach().clone()))
    with torch.no_grad():
        reference = layer(x)
        with torch.autocast("cpu", dtype=torch.bfloat16):
            y = layer(x)
    assert reference.dtype == torch.float32 and y.dtype == torch.bfloat16 and y.shape == (2, 32, 4)
    assert mixed[1].dtype == torch.float32 and torch.equal(mixed[1], mixed[0])  # the SSM path: bit for bit

    u = 2.0**-8
    g, W, b = mixed[0].double(), layer.output_linear.weight.double(), layer.output_linear.bias.double()
    a, c = (g @ W.T + b).chunk(2, -1)
    error_a, error_c = (3 * u * (g.abs() @ W.abs().T + b.abs())).chunk(2, -1)
    bound = torch.sigmoid(c) * error_a + a.abs() * error_c / 4 + 3 * u * (a * torch.sigmoid(c)).abs()
    assert ((y.double() - reference.double()).abs() <= bound).all()
    assert (y.double() - reference.double()).abs().max() > 1e-4  # bf16 did run: the comparison is not vacuous


@pytest.mark.parametrize("mode", ["dplr", "diag"])
def test_stability_by_construction(mode):
    """Re Λ = −exp(·) < 0 however far training pushes it, and S4's A = Λ − PP* only adds the negative semi-definite
    −PP*: A's Hermitian part is negative semi-definite, so the bilinear Ā (its Cayley transform), like S4D's ZOH
    e^{ΔΛ}, is a contraction and a free state never grows. Here Re Λ is −e⁻³⁰ (as near 0 as it gets) with Im Λ
    and P tripled: S4's state still dies out through −PP*; S4D's rings on undamped, bounded by its first state."""
    torch.manual_seed(0)
    layer = S4(4, d_state=16, mode=mode, l_max=4000).double()
    with torch.no_grad():
        layer.ssm.log_neg_real.fill_(-30.0)
        layer.ssm.imag.mul_(3.0)
        if mode == "dplr":
            layer.ssm.P.mul_(3.0)
        state, norms = torch.zeros(1, 4, 8, dtype=torch.complex128), []
        for t in range(4000):  # the impulse response, by the recurrence
            _, state = layer.ssm.step(torch.full((1, 4), float(t == 0), dtype=torch.float64), state)
            norms.append(state[0].abs().norm(dim=-1))
        norms = torch.stack(norms, -1)  # (H, L): ‖x_k‖ per channel
        kernel = layer.kernel(4000).abs()  # (H, L), by the convolutional route
    assert (norms[:, 1:] <= norms[:, :-1] * (1 + 1e-12)).all()  # step after step, the state never grows
    head, tail = kernel[:, :400].amax(-1), kernel[:, -400:].amax(-1)
    if mode == "dplr":
        assert (tail < 1e-3 * head).all()  # the kernel decays
    else:
        # |K_k| = |2 Re Σ C_n x_n(k)| ≤ 2‖C‖‖x(k)‖ ≤ 2‖C‖‖x(0)‖ at every lag, and without damping it does not decay.
        C = torch.view_as_complex(layer.ssm.C.detach())
        assert (kernel.amax(-1) <= 2 * C.abs().norm(dim=-1) * norms[:, 0]).all() and (tail > 0.5 * head).all()


def _dense_kernel(layer: S4, L: int, dt_scale: float) -> torch.Tensor:
    """The naive float64 kernel K_k = C Ā^k B̄ of a causal layer (n_ssm = None) at Δ·dt_scale: dense Ā, B̄ of the
    full N-state system. S4 through its own dense route (C̃ untruncated at that step), S4D built here."""
    layer = copy.deepcopy(layer).double()
    if layer.mode == "dplr":
        return layer.ssm.dense_kernel(L, dt_scale)
    ssm = layer.ssm
    A, B, C = pair_expand(ssm.Lambda(), None, torch.view_as_complex(ssm.B), torch.view_as_complex(ssm.C))
    discretize = discretize_zoh if ssm.discretization == "zoh" else discretize_bilinear
    return naive_kernel(*discretize(A, B, torch.exp(ssm.log_dt) * dt_scale), C, L)


@pytest.mark.parametrize("mode", ["dplr", "diag"])
def test_kernel_and_layer_at_44k_equal_the_float64_reference(mode):
    """44.1 kHz input, dt_scale = 16000/44100 < 1: the layer's kernel (float32, Algorithm 1 or Vandermonde) equals
    the dense float64 powers at the shrunk Δ, up to S4's horizon l_max/dt_scale = 176 samples and past it, and the
    layer's output is that kernel's causal convolution plus D·u, through GELU and the output mixing.
    Tolerance: float32 kernels are within 1e-4 of float64 (test_layer_kernel_equals_dense_reference)."""
    torch.manual_seed(0)
    layer = S4(3, d_state=8, mode=mode, l_max=64)
    x = torch.randn(2, 400, 3)
    with torch.no_grad():
        for L in (176, 400):
            reference = _dense_kernel(layer, L, SCALE_44K)
            assert _relative_error(layer.kernel(L, SCALE_44K).double(), reference) < 1e-4
        u = x.double().transpose(1, 2)
        y = (fft_conv(u, reference) + layer.D.double()[:, None] * u).transpose(1, 2)
        mixing = copy.deepcopy(layer.output_linear).double()
        assert _relative_error(layer(x, dt_scale=SCALE_44K).double(), mixing(F.gelu(y))) < 1e-4
        assert _relative_error(layer(x).double(), mixing(F.gelu(y))) > 1e-2  # Δ unscaled: visibly another kernel


def test_bad_arguments_are_named():
    with pytest.raises(ValueError, match="unknown S4 mode 'ssm'"):
        S4(4, mode="ssm")
    with pytest.raises(ValueError, match="n_ssm=3 must divide"):
        S4(4, n_ssm=3)
    with pytest.raises(ValueError, match="dt_min <= dt_max"):
        S4(4, dt_min=0.1, dt_max=0.01)
    with pytest.raises(ValueError, match=r"expects \(batch, length, 4\)"):
        S4(4)(torch.randn(2, 10, 5))


@pytest.mark.parametrize("mode", ["dplr", "diag"])
def test_step_chunk_equals_step_loop(mode):
    torch.manual_seed(0)
    layer = S4(6, d_state=16, mode=mode, l_max=4000).eval()
    x = torch.randn(2, 300, 6)
    with torch.no_grad():
        state, looped = layer.initial_state(2), []
        for t in range(300):
            y_t, state = layer.step(x[:, t], state, dt_scale=2.0)
            looped.append(y_t)
        looped = torch.stack(looped, 1)
        first, mid = layer.step_chunk(x[:, :120], layer.initial_state(2), dt_scale=2.0)
        second, end = layer.step_chunk(x[:, 120:], mid, dt_scale=2.0)
    assert _relative_error(torch.cat([first, second], 1), looped) < 1e-4
    assert torch.allclose(end, state, rtol=1e-4, atol=1e-5)


def test_kernels_are_remembered_without_autograd_until_a_parameter_changes():
    layer = S4(4, d_state=8, mode="diag", l_max=64)
    with torch.no_grad():
        first = layer.kernel(64, 2.0)
        assert layer.kernel(64, 2.0) is first
        layer.ssm.log_dt.add_(0.1)
        changed = layer.kernel(64, 2.0)
    assert changed is not first and not torch.allclose(changed, first)
    assert layer.kernel(64, 2.0).requires_grad  # with autograd on, nothing is remembered


@pytest.mark.parametrize("mode", ["dplr", "diag"])
@pytest.mark.parametrize("bidirectional", [False, True])
def test_forward_and_gradients_equal_the_plain_composition(mode, bidirectional):
    """The layer folds D into the kernel's lag-0 tap, lays a bidirectional pair out as one two-sided kernel and
    convolves with the recomputing channels-last FFT; the plain route is two `fft_conv`s plus D·u."""
    torch.manual_seed(0)
    layer = S4(6, d_state=8, mode=mode, bidirectional=bidirectional, l_max=300)
    x = torch.randn(2, 300, 6, requires_grad=True)
    probe = torch.randn(2, 300, 6)

    def plain(x):
        u, k = x.transpose(1, 2), layer.kernel(300)
        y = fft_conv(u, k[0]) + fft_conv(u.flip(-1), k[1]).flip(-1) if bidirectional else fft_conv(u, k)
        return layer._mix((y + layer.D[:, None] * u).transpose(1, 2))

    grads = []
    for route in (layer, plain):
        layer.zero_grad()
        x.grad = None
        y = route(x)
        (y * probe).sum().backward()
        grads.append([y.detach(), x.grad] + [p.grad.clone() for p in layer.parameters()])
    # float32 both ways: outputs agree to rounding, gradients (sums over L of products) to a little more.
    for i, (fast, reference) in enumerate(zip(*grads, strict=True)):
        assert _relative_error(fast, reference) < (1e-5 if i == 0 else 1e-4)


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device (benchmarks/gpu_check.sh runs it)")
@pytest.mark.parametrize("mode", ["dplr", "diag"])
@pytest.mark.parametrize("bidirectional", [False, True])
def test_cuda_layer_matches_the_cpu_layer(mode, bidirectional):
    torch.manual_seed(0)
    layer = S4(16, d_state=16, mode=mode, bidirectional=bidirectional, l_max=2000)
    x = torch.randn(2, 2000, 16)
    results = []
    for device in ("cpu", "cuda"):
        layer.to(device).zero_grad()
        y = layer(x.to(device))
        y.square().mean().backward()
        results.append([y.detach().cpu()] + [p.grad.cpu() for p in layer.parameters()])
    for on_cuda, on_cpu in zip(results[1], results[0], strict=True):
        assert _relative_error(on_cuda, on_cpu) < 1e-4


def _float64_views(layer, L=128):
    """A causal layer's SSMs in float64, convolutional and recurrent, on one input u (2, H, L) → (the convolution
    with `layer.kernel`, a `step` loop, `step_chunk` over two chunks, the loop's final state, the chunks').

    The SSMs, not the whole layer: the layer's forward and step_chunk run their FFTs in float32."""
    torch.manual_seed(1)
    ssm = layer.double().ssm
    u = torch.randn(2, layer.d_model, L, dtype=torch.float64)
    with torch.no_grad():
        conv = fft_conv(u, layer.kernel(L))
        state, stepped = torch.zeros(2, layer.d_model, layer.d_state // 2, dtype=torch.complex128), []
        for t in range(L):
            y_t, state = ssm.step(u[..., t], state)
            stepped.append(y_t)
        first, mid = ssm.step_chunk(u[..., : L // 3], torch.zeros_like(state))
        second, end = ssm.step_chunk(u[..., L // 3 :], mid)
    return conv, torch.stack(stepped, -1), torch.cat([first, second], -1), state, end


@pytest.mark.parametrize(("init", "discretization"), [("lin", "bilinear"), ("inv", "bilinear"), ("inv", "zoh")])
def test_diag_recurrence_equals_the_convolution_in_float64(init, discretization):
    """Bilinear S4D steps with Ā = (1 + ΔΛ/2)/(1 − ΔΛ/2) and its log (step_chunk's powers), ZOH with e^{ΔΛ}: in
    float64 any formula mismatch with the kernel shows far above round-off (1e-15 here)."""
    torch.manual_seed(0)
    layer = S4(4, d_state=16, mode="diag", init=init, discretization=discretization, l_max=128)
    conv, stepped, chunked, state, end = _float64_views(layer)
    assert conv.dtype == stepped.dtype == chunked.dtype == torch.float64 and state.dtype == torch.complex128
    assert _relative_error(stepped, conv) < 1e-12 and _relative_error(chunked, conv) < 1e-12
    assert _relative_error(end, state) < 1e-12


def test_inv_init_gives_the_s4d_inv_frequencies():
    """S4D-Inv: Λ_n = −½ + i·N/π·(N/(2n+1) − 1), n < N/2, the same for every channel and every SSM copy."""
    N = 16
    layer = S4(6, d_state=N, mode="diag", init="inv", n_ssm=2)
    n = torch.arange(N // 2, dtype=torch.float64)
    imag = N / torch.pi * (N / (2 * n + 1) - 1)
    with torch.no_grad():
        Lambda = layer.ssm.Lambda().to(torch.complex128)
    assert layer.ssm.imag.shape == (2, N // 2) and Lambda.shape == (6, N // 2)
    assert torch.allclose(Lambda.real, torch.full_like(Lambda.real, -0.5))
    assert torch.allclose(Lambda.imag, imag.expand(6, -1), rtol=1e-6)
