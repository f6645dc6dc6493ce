"""The S4D filterbank front end: against a direct float64 convolution, across sampling rates, the alias cutoff."""

import math

import numpy as np
import pytest
import torch
from torch import Tensor

from s4 import S4Classifier
from s4.fft import fft_conv
from s4.frontend import LOG_FLOOR, SSMFilterbank, mel_frequencies, normalize_level
from s4.ssm import DiagSSM


def test_mel_frequencies_span_and_grow_apart():
    f = mel_frequencies(20, 50.0, 7800.0)
    assert f.dtype == torch.float64 and f.shape == (20,)
    assert f[0].item() == pytest.approx(50.0) and f[-1].item() == pytest.approx(7800.0)
    gaps = f.diff()
    assert (gaps > 0).all() and (gaps.diff() > 0).all()  # mel: wider apart the higher they go


def test_filterbank_matches_direct_convolution():
    torch.manual_seed(0)
    bank = SSMFilterbank(channels=3, modes=2, f_min=100.0, f_max=3000.0, hop_ms=5.0, sample_rate=8000)
    wave = torch.randn(2, 400) * 0.3
    features = bank(wave)
    assert features.shape == (2, 10, 3) and features.dtype == torch.float32
    # Reference in float64: the kernel, a direct causal convolution, |·|, 40-sample means, log.
    with torch.no_grad():
        k = bank.ssm.kernel(400).double().numpy()
    u = normalize_level(wave.double()).numpy()
    expected = np.empty((2, 10, 3))
    for b in range(2):
        for h in range(3):
            y = np.convolve(u[b], k[h])[:400]
            expected[b, :, h] = np.log(np.abs(y).reshape(10, 40).mean(1) + LOG_FLOOR)
    np.testing.assert_allclose(features.detach().numpy(), expected, atol=2e-4)


def test_filterbank_gradients_reach_every_parameter():
    bank = SSMFilterbank(channels=4, modes=2)
    bank(torch.randn(3, 1600)).sum().backward()
    for name, parameter in bank.named_parameters():
        assert parameter.grad is not None and torch.isfinite(parameter.grad).all(), name
        assert parameter.grad.abs().sum() > 0, name


@pytest.mark.parametrize("rate, dt_scale, hop", [(16000, 1.0, 160), (8000, 2.0, 80), (44100, 16000 / 44100, 441)])
def test_frames_are_a_duration(rate, dt_scale, hop):
    bank = SSMFilterbank(channels=2, modes=2)
    assert bank.hop(dt_scale) == hop
    assert bank(torch.randn(1, rate), dt_scale).shape == (1, 100, 2)


def test_a_tone_gives_the_same_envelopes_at_half_the_rate():
    """A 600 Hz tone at 16 kHz and at 8 kHz with Δ doubled: every mode keeps its frequency in Hz, so the
    channels that hear the tone (within 13 dB of the strongest) agree after the first frames' transients.
    Far from the tone ZOH's hold of the input between samples shows, more so at the coarser step."""
    bank = SSMFilterbank(channels=8, modes=2, f_min=100.0, f_max=3500.0)
    t16, t8 = torch.arange(16000) / 16000, torch.arange(8000) / 8000
    with torch.no_grad():
        at16 = bank(torch.sin(2 * math.pi * 600 * t16)[None])
        at8 = bank(torch.sin(2 * math.pi * 600 * t8)[None], dt_scale=2.0)
    assert at16.shape == at8.shape
    level = at16[0, 5:].mean(0)
    heard = level > level.max() - 1.5
    assert 2 <= heard.sum() < 8
    torch.testing.assert_close(at8[0, 5:, heard], at16[0, 5:, heard], atol=0.05, rtol=0)


def test_modes_above_the_nyquist_frequency_switch_off():
    ssm = DiagSSM(2, 4, alias_cutoff=0.9, dt_min=1.0, dt_max=1.0)
    with torch.no_grad():
        ssm.imag.copy_(torch.tensor([[0.5, 2.0], [1.0, 2.5]]))  # rad per sample at dt_scale 1
    reference = DiagSSM(2, 4, dt_min=1.0, dt_max=1.0)
    reference.load_state_dict(ssm.state_dict())
    with torch.no_grad():
        torch.testing.assert_close(ssm.kernel(64), reference.kernel(64))  # all below 0.9π at dt_scale 1
        # At dt_scale 2 the modes at 2.0 and 2.5 rad per sample reach 4 and 5 > 0.9π: only theirs go.
        reference.C[:, 1] = 0
        torch.testing.assert_close(ssm.kernel(64, 2.0), reference.kernel(64, 2.0))
    with pytest.raises(ValueError, match="alias_cutoff"):
        DiagSSM(2, 4, alias_cutoff=1.5)


def _step_loop(ssm: DiagSSM, u: Tensor, dt_scale: float) -> Tensor:
    """The recurrent view, u (B, H, L) → y (B, H, L), one `step` per sample from a zero state (float64)."""
    state, outputs = torch.zeros(*u.shape[:2], ssm.half_state, dtype=torch.complex128), []
    for t in range(u.shape[-1]):
        y, state = ssm.step(u[..., t], state, dt_scale)
        outputs.append(y)
    return torch.stack(outputs, -1)


def test_modes_above_the_nyquist_frequency_switch_off_in_the_recurrent_view_too():
    """The cutoff acts in `step` and `step_chunk` as in the kernel: at dt_scale 2 the modes at 2.0 and 2.5 rad per
    sample (4 and 5 > 0.9π) contribute nothing, and the recurrence equals the convolution with the cut kernel."""
    ssm = DiagSSM(2, 4, alias_cutoff=0.9, dt_min=1.0, dt_max=1.0).double()
    with torch.no_grad():
        ssm.imag.copy_(torch.tensor([[0.5, 2.0], [1.0, 2.5]]))
    without_cut_modes = DiagSSM(2, 4, dt_min=1.0, dt_max=1.0).double()
    without_cut_modes.load_state_dict(ssm.state_dict())
    uncut = DiagSSM(2, 4, dt_min=1.0, dt_max=1.0).double()
    uncut.load_state_dict(ssm.state_dict())
    u = torch.randn(3, 2, 96, dtype=torch.float64)
    with torch.no_grad():
        without_cut_modes.C[:, 1] = 0
        for dt_scale, reference in ((1.0, uncut), (2.0, without_cut_modes)):  # at dt_scale 1 all are below 0.9π
            stepped = _step_loop(ssm, u, dt_scale)
            torch.testing.assert_close(stepped, _step_loop(reference, u, dt_scale), rtol=0, atol=1e-12)
            torch.testing.assert_close(stepped, fft_conv(u, ssm.kernel(96, dt_scale)), rtol=0, atol=1e-12)
            start = torch.zeros(3, 2, 2, dtype=torch.complex128)
            torch.testing.assert_close(ssm.step_chunk(u, start, dt_scale)[0], stepped, rtol=0, atol=1e-12)
        assert (_step_loop(uncut, u, 2.0) - stepped).abs().max() > 0.1  # the cut modes did carry signal


def test_max_frequency_clamps_modes_in_both_views():
    ssm = DiagSSM(2, 4, max_frequency=0.5, dt_min=1.0, dt_max=1.0)
    with torch.no_grad():
        ssm.imag.copy_(torch.tensor([[0.5, 2.0], [-1.0, -2.5]]))  # rad per sample; two beyond ±π/2
    reference = DiagSSM(2, 4, dt_min=1.0, dt_max=1.0)
    reference.load_state_dict(ssm.state_dict())
    with torch.no_grad():
        reference.imag.copy_(torch.tensor([[0.5, math.pi / 2], [-1.0, -math.pi / 2]]))
        for dt_scale in (1.0, 2.0):
            torch.testing.assert_close(ssm.kernel(64, dt_scale), reference.kernel(64, dt_scale))
        u, state = torch.randn(3, 2), reference.initial_state(3)
        torch.testing.assert_close(ssm.step(u, state)[0], reference.step(u, state)[0])
    ssm.kernel(64).sum().backward()  # the clamped modes get no gradient through their frequency
    assert (ssm.imag.grad[:, 1] == 0).all() and (ssm.imag.grad[:, 0] != 0).all()
    with pytest.raises(ValueError, match="max_frequency"):
        DiagSSM(2, 4, max_frequency=0.0)


def test_a_kept_band_hears_the_same_at_half_the_rate():
    """A mode trained past f_max is held at f_max, under the Nyquist frequency of 8 kHz: the cutoff keeps it."""
    bank = SSMFilterbank(channels=4, modes=2, f_max=3800.0, keep_band=True)
    free = SSMFilterbank(channels=4, modes=2, f_max=3800.0)
    with torch.no_grad():
        bank.ssm.imag[-1, -1] = 2 * math.pi * 4500 / 16000
        free.load_state_dict(bank.state_dict())
        free.ssm.imag[-1, -1] = 2 * math.pi * 3800 / 16000
        at16, at8 = bank.ssm.kernel(4000), bank.ssm.kernel(2000, 2.0)
        torch.testing.assert_close(at16, free.ssm.kernel(4000))
        torch.testing.assert_close(at8, free.ssm.kernel(2000, 2.0))
        free.ssm.imag[-1, -1] = 2 * math.pi * 4500 / 16000  # unkept, the same mode is switched off at 8 kHz
        assert (free.ssm.kernel(2000, 2.0)[-1] - at8[-1]).abs().max() > 0.1 * at8[-1].abs().max()


def test_max_frequency_may_differ_per_channel():
    ssm = DiagSSM(2, 4, max_frequency=[0.25, 0.75], dt_min=1.0, dt_max=1.0)
    with torch.no_grad():
        ssm.imag.fill_(2.5)  # rad per sample, above both limits
    reference = DiagSSM(2, 4, dt_min=1.0, dt_max=1.0)
    reference.load_state_dict(ssm.state_dict())
    with torch.no_grad():
        reference.imag.copy_(torch.tensor([[math.pi / 4], [3 * math.pi / 4]]).expand(2, 2))
        torch.testing.assert_close(ssm.kernel(64), reference.kernel(64))
    with pytest.raises(ValueError, match="one per channel"):
        DiagSSM(2, 4, max_frequency=[0.5, 0.5, 0.5])
    with pytest.raises(ValueError, match="max_frequency"):
        DiagSSM(2, 4, max_frequency=[0.5, 1.5])


def _two_bands(**changes) -> tuple[SSMFilterbank, SSMFilterbank]:
    """A filterbank with a high band over 3.8–7.6 kHz, and one with its low band alone and the same weights."""
    options = {"channels": 4, "modes": 2, "f_max": 3800.0, "keep_band": True}
    both = SSMFilterbank(**options, high_channels=2, high_f_max=7600.0, **changes)
    low = SSMFilterbank(**options)
    with torch.no_grad():
        for name, parameter in low.ssm.named_parameters():
            parameter.copy_(getattr(both.ssm, name)[:4])
    return both, low


def test_a_high_band_adds_channels_above_the_low_band():
    both, low = _two_bands()
    assert both.channels == 6 and both.low_channels == 4
    hz = both.ssm.imag.detach() * 16000 / (2 * math.pi)  # (channels, modes)
    assert hz[:4].max() < 3800 < hz[4:].min() and hz[4:].max() < 7600
    wave = torch.randn(2, 16000)
    with torch.no_grad():
        at16 = both.eval()(wave)
        torch.testing.assert_close(at16[..., :4], low.eval()(wave))
    assert (at16[..., 4:].std(1) > 0.05).all()  # heard, not filled in


def test_a_high_band_reads_as_missing_below_its_nyquist_rate():
    """At 8 kHz (Δ doubled) the high band lies above the Nyquist frequency: its channels take the clip's mean
    over the low band, which hears what a filterbank without a high band hears."""
    both, low = _two_bands()
    wave = torch.randn(2, 8000)
    with torch.no_grad():
        at8, low8 = both.eval()(wave, 2.0), low.eval()(wave, 2.0)
    torch.testing.assert_close(at8[..., :4], low8)
    torch.testing.assert_close(at8[..., 4:], low8.mean((1, 2), keepdim=True).expand(-1, 100, 2))


def _filled(envelope: Tensor) -> Tensor:
    """(B, T, 6) → (B,): whether the two high channels hold the clip's mean over the four low ones."""
    fill = envelope[..., :4].mean((1, 2), keepdim=True)
    return torch.isclose(envelope[..., 4:], fill, rtol=0, atol=1e-5).all(-1).all(-1)


@pytest.mark.parametrize("high_drop, dropped", [(0.0, 0), (1.0, 8)])
def test_training_drops_the_high_band_from_a_share_of_clips(high_drop, dropped):
    both, _ = _two_bands(high_drop=high_drop)
    envelope = both.train()(torch.randn(8, 16000))
    filled = _filled(envelope)
    assert filled.sum() == dropped
    envelope.sum().backward()
    assert (both.ssm.imag.grad[4:] != 0).any() == (dropped < 8)  # a dropped band learns nothing from the clip


def test_training_drops_about_high_drop_of_clips():
    torch.manual_seed(0)
    both, _ = _two_bands(high_drop=0.5)
    with torch.no_grad():
        envelope = both.train()(torch.randn(200, 1600))
    filled = _filled(envelope)
    assert 70 < filled.sum() < 130


def test_a_high_band_needs_a_top_between_the_low_band_and_nyquist():
    for top in (None, 3000.0, 8000.0):
        with pytest.raises(ValueError, match="high_f_max"):
            SSMFilterbank(f_max=3800.0, high_channels=2, high_f_max=top)
    with pytest.raises(ValueError, match="high_drop"):
        SSMFilterbank(f_max=3800.0, high_channels=2, high_f_max=7600.0, high_drop=1.5)


def test_filterbank_rejects_bad_bands():
    with pytest.raises(ValueError, match="Nyquist"):
        SSMFilterbank(f_max=9000.0)
    with pytest.raises(ValueError, match="hop_ms"):
        SSMFilterbank(hop_ms=0.01)
    with pytest.raises(ValueError, match="unknown frontend option.*f_maks"):
        S4Classifier(12, d_model=8, n_layers=1, d_state=4, frontend={"f_maks": 3000.0})


def test_level_normalisation_leaves_digital_silence_alone():
    assert normalize_level(torch.zeros(1, 100)).abs().max() == 0
    loud, quiet = torch.randn(1, 1000), torch.randn(1, 1000)
    torch.testing.assert_close(normalize_level(loud), normalize_level(loud * 0.01))
    assert normalize_level(quiet).pow(2).mean().item() == pytest.approx(1.0, rel=1e-5)


def test_classifier_with_filterbank():
    frontend = {"channels": 6, "modes": 2, "f_min": 80.0, "f_max": 3500.0, "hop_ms": 10.0, "sample_rate": 8000}
    model = S4Classifier(12, d_model=8, n_layers=2, d_state=4, mode="diag", bidirectional=True, norm="layer",
                         l_max=8000, frontend=frontend)  # fmt: skip
    assert model.blocks[0].s4.ssm.channels == 16  # two directions of H=8, over 100 frames
    logits = model(torch.randn(2, 8000))
    assert logits.shape == (2, 12)
    logits.sum().backward()
    assert all(p.grad is not None and torch.isfinite(p.grad).all() for p in model.parameters())
    model.eval()
    with torch.no_grad():
        assert model(torch.randn(2, 4000), dt_scale=2.0).shape == (2, 12)
    with pytest.raises(ValueError, match="step"):
        model.initial_state(1)


def test_only_the_filterbank_is_rescaled():
    frontend = {"channels": 4, "modes": 2, "hop_ms": 10.0}
    with_bank = S4Classifier(12, d_model=8, n_layers=2, d_state=4, mode="diag", bidirectional=True, frontend=frontend)
    plain = S4Classifier(10, d_model=8, n_layers=2, d_state=4, mode="diag")
    assert with_bank.rescaled_ssms() == [with_bank.frontend.ssm] and not with_bank.causal
    assert plain.rescaled_ssms() == [block.s4.ssm for block in plain.blocks] and plain.causal
