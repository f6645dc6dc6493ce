"""The filterbank's analytic envelope (a band-limited slice per channel, brought to baseband) against a float64
reference of the same definition, against the rectified envelope it replaces, and across sampling rates."""

import math

import numpy as np
import pytest
import torch
from torch import Tensor

from s4 import S4Classifier
from s4.frontend import LOG_FLOOR, SSMFilterbank, normalize_level

OPTIONS = {"channels": 6, "modes": 2, "f_min": 100.0, "f_max": 3000.0, "hop_ms": 5.0, "sample_rate": 8000}


def _pair(**options) -> tuple[SSMFilterbank, SSMFilterbank]:
    """A rectified and an analytic filterbank with the same weights."""
    rectified = SSMFilterbank(**options)
    analytic = SSMFilterbank(**options, envelope="analytic")
    analytic.load_state_dict(rectified.state_dict())
    return rectified, analytic


def reference_envelope(u: np.ndarray, kernel: np.ndarray, starts: np.ndarray, width: int, hop: int, points: int):
    """The analytic envelope from its definition, float64, by another route: the full linear convolution, its whole
    spectrum with every bin outside [start, start + width) zeroed, the analytic signal at every sample
    (twice the one-sided spectrum), and (2/π)·the mean of its magnitude at `points` evenly spaced samples per frame.
    u (L,), kernel (channels, L) → (frames, channels)."""
    frames = -(-len(u) // hop)
    n = 2 * frames * hop
    out = np.empty((frames, len(kernel)))
    for h, k in enumerate(kernel):
        spectrum = np.fft.fft(np.convolve(u, k), n)
        one_sided = np.zeros(n, complex)
        one_sided[starts[h] : starts[h] + width] = 2 * spectrum[starts[h] : starts[h] + width]
        magnitude = np.abs(np.fft.ifft(one_sided))[: frames * hop]
        at = np.arange(frames)[:, None] * hop + np.arange(points) * (hop // points)
        out[:, h] = 2 / math.pi * magnitude[at].mean(1)
    return out


def test_analytic_envelope_matches_its_float64_definition():
    """Tolerance: float32 FFTs of length n = 800 carry relative errors near 1e-6 of the loudest bin; after the log
    (whose slope is at most 1 / LOG_FLOOR = 1000) that stays under 1e-4; 2e-4 leaves room for the sums."""
    torch.manual_seed(0)
    bank = SSMFilterbank(**OPTIONS, envelope="analytic", band_hz=800.0)
    wave = torch.randn(2, 400) * 0.3
    with torch.no_grad():
        features = bank(wave)
        kernel = bank.ssm.kernel(400).double().numpy()
    assert features.shape == (2, 10, 6) and features.dtype == torch.float32
    hop, points = bank.hop(), bank.points  # 40 samples, 4 points per 5 ms frame
    assert points == 4
    starts = bank.band_starts(2 * 10 * hop, points * 20).numpy()
    u = normalize_level(wave.double()).numpy()
    for b in range(2):
        expected = np.log(reference_envelope(u[b], kernel, starts, points * 20, hop, points) + LOG_FLOOR)
        np.testing.assert_allclose(features[b].numpy(), expected, atol=2e-4, rtol=0)


def _differentiable_reference(u: Tensor, kernel: Tensor, starts: Tensor, width: int, hop: int, points: int) -> Tensor:
    """reference_envelope in torch, float64, differentiable in the kernel: (B, L), (channels, L) → (B, T, channels)."""
    frames = -(-u.shape[-1] // hop)
    n = 2 * frames * hop
    spectrum = torch.fft.fft(u, n)[:, None] * torch.fft.fft(kernel, n)  # (B, channels, n): the linear convolution
    inside = (torch.arange(n) >= starts[:, None]) & (torch.arange(n) < starts[:, None] + width)
    magnitude = torch.fft.ifft(2 * spectrum * inside, dim=-1).abs()[..., : frames * hop]
    at = (torch.arange(frames)[:, None] * hop + torch.arange(points) * (hop // points)).flatten()
    envelope = 2 / math.pi * magnitude[..., at].unflatten(-1, (frames, points)).mean(-1)
    return torch.log(envelope + LOG_FLOOR).transpose(1, 2)


def test_analytic_envelope_gradients_match_float64():
    """d(loss)/d(kernel) through the sliced path (float32) against the full-spectrum reference (float64): relative
    error under 1e-3 of the largest gradient, float32's FFT error amplified by the log's slope."""
    torch.manual_seed(1)
    bank = SSMFilterbank(**OPTIONS, envelope="analytic")
    u = normalize_level(torch.randn(2, 400))
    weights = torch.randn(2, 10, 6, dtype=torch.float64)
    with torch.no_grad():
        kernel = bank.ssm.kernel(400)
    ours = kernel.clone().requires_grad_()
    loss = (torch.log(bank._analytic(u, ours, 1.0) + LOG_FLOOR).transpose(1, 2).double() * weights).sum()
    loss.backward()
    ref = kernel.double().requires_grad_()
    starts = bank.band_starts(800, bank.points * 20)
    reference = _differentiable_reference(u.double(), ref, starts, bank.points * 20, bank.hop(), bank.points)
    (reference * weights).sum().backward()
    scale = ref.grad.abs().max()
    assert scale > 0
    torch.testing.assert_close(ours.grad.double() / scale, ref.grad / scale, atol=1e-3, rtol=0)


def test_analytic_gradients_reach_every_parameter():
    bank = SSMFilterbank(channels=4, modes=2, envelope="analytic")
    bank(torch.randn(3, 1600)).sum().backward()
    for name, parameter in bank.named_parameters():
        assert parameter.grad is not None and torch.isfinite(parameter.grad).all(), name
        assert parameter.grad.abs().sum() > 0, name


def test_analytic_agrees_with_rectified_on_a_tone():
    """A 440 Hz tone, slowly modulated: the channels that hear it (within 13 dB of the strongest) read the same
    level in both envelopes, within 0.05 in the log (5%): for narrow-band sound (2/π)·|a| is the mean of |y|."""
    rectified, analytic = _pair(channels=64, modes=4, f_min=50.0, f_max=3800.0, keep_band=True)
    t = torch.arange(16000) / 16000
    wave = (torch.sin(2 * math.pi * 440 * t) * (1 + 0.5 * torch.sin(2 * math.pi * 3 * t)))[None]
    with torch.no_grad():
        old, new = rectified(wave)[0, 5:], analytic(wave)[0, 5:]
    level = old.mean(0)
    heard = level > level.max() - 1.5
    assert 1 <= heard.sum() < 8
    torch.testing.assert_close(new[:, heard], old[:, heard], atol=0.05, rtol=0)


def test_analytic_agrees_with_rectified_on_noise_on_average():
    """White noise: every channel hears its band; the slice drops the response's far tails (a resonance falls as
    1/|f − f₀| away from its peak), so the two envelopes differ by a few percent on average, never by orders."""
    torch.manual_seed(2)
    rectified, analytic = _pair(channels=64, modes=4, f_min=50.0, f_max=3800.0, keep_band=True)
    with torch.no_grad():
        wave = torch.randn(4, 16000)
        difference = analytic(wave) - rectified(wave)
    assert difference.abs().mean() < 0.15 and difference.abs().max() < 1.5


def test_the_slice_follows_the_modes():
    """Move a channel's modes to 2 kHz: its slice moves with them, and it hears a 2 kHz tone it did not hear."""
    bank = SSMFilterbank(channels=2, modes=2, f_min=200.0, f_max=600.0, envelope="analytic")
    t = torch.arange(16000) / 16000
    tone = torch.sin(2 * math.pi * 2000 * t)[None]
    with torch.no_grad():
        before = bank(tone)[0, 5:, 1].mean()
        starts_before = bank.band_starts(32000, bank.points * 200)
        bank.ssm.imag[1] = 2 * math.pi * torch.tensor([1980.0, 2020.0]) / 16000
        after = bank(tone)[0, 5:, 1].mean()
        starts_after = bank.band_starts(32000, bank.points * 200)
    assert starts_before[0] == starts_after[0] and starts_after[1] - starts_before[1] > 2 * 1500
    assert before < math.log(LOG_FLOOR) + 0.5 < after - 3


@pytest.mark.parametrize("envelope", ["rectified", "analytic"])
def test_a_tone_gives_the_same_envelopes_at_half_the_rate(envelope):
    """A 600 Hz tone at 16 kHz and at 8 kHz with Δ doubled: the channels that hear it agree within 0.05 (log),
    as the rectified envelope always has; the analytic slices are the same in Hz at both rates."""
    bank = SSMFilterbank(channels=8, modes=2, f_min=100.0, f_max=3500.0, envelope=envelope)
    t16, t8 = torch.arange(16000) / 16000, torch.arange(8000) / 8000
    with torch.no_grad():
        at16 = bank(torch.sin(2 * math.pi * 600 * t16)[None])
        at8 = bank(torch.sin(2 * math.pi * 600 * t8)[None], dt_scale=2.0)
    level = at16[0, 5:].mean(0)
    heard = level > level.max() - 1.5
    assert 1 <= heard.sum() < 8
    torch.testing.assert_close(at8[0, 5:, heard], at16[0, 5:, heard], atol=0.05, rtol=0)


def test_analytic_classifier_runs_at_both_rates():
    frontend = {"channels": 6, "modes": 2, "f_max": 3500.0, "keep_band": True, "envelope": "analytic"}
    model = S4Classifier(12, d_model=8, n_layers=2, d_state=4, mode="dplr", bidirectional=True, frontend=frontend)
    logits = model(torch.randn(2, 16000))
    assert logits.shape == (2, 12)
    logits.sum().backward()
    assert all(p.grad is not None and torch.isfinite(p.grad).all() for p in model.parameters())
    with torch.no_grad():
        assert model.eval()(torch.randn(2, 8000), dt_scale=2.0).shape == (2, 12)


def test_analytic_options_are_checked():
    with pytest.raises(ValueError, match="unknown envelope 'hilbert'"):
        SSMFilterbank(envelope="hilbert")
    with pytest.raises(ValueError, match="band_hz"):
        SSMFilterbank(envelope="analytic", band_hz=9000.0)
