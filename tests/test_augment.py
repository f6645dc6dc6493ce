"""training.data.augment: speed, shift, gain and noise of one clip, noise recordings by split, noise at a fixed SNR for
evaluation; the filterbank's time/channel masking; mixup of a batch."""

from __future__ import annotations

import numpy as np
import pytest
import soundfile as sf
import torch

from s4.frontend import SSMFilterbank, mask_envelopes
from training.data.augment import Augment, WithNoise, change_speed, load_noises, mixup


def test_augment_shift_gain_and_noise():
    wave = torch.zeros(1000)
    wave[500] = 0.5
    shifted = Augment((), sample_rate=1000, shift_ms=100, noise_prob=0, gain_db=(0, 0))
    out = shifted(wave, np.random.default_rng(0))
    assert out.shape == (1000,) and 400 <= int(out.abs().argmax()) <= 600 and out.abs().max() == 0.5
    louder = Augment((), shift_ms=0, gain_db=(6, 6))(wave, np.random.default_rng(0))
    assert louder.max().item() == pytest.approx(0.5 * 10 ** (6 / 20), rel=1e-4)
    noise = torch.from_numpy(np.random.default_rng(1).standard_normal(3000).astype(np.float32))
    speech = torch.sin(torch.arange(1000) * 0.1) * 0.1
    noisy = Augment([noise], shift_ms=0, noise_prob=1, snr_db=(10, 10), gain_db=(0, 0))
    added = noisy(speech, np.random.default_rng(0)) - speech
    snr = 20 * torch.log10(speech.pow(2).mean().sqrt() / added.pow(2).mean().sqrt())
    assert snr.item() == pytest.approx(10, abs=0.1)


def test_change_speed_scales_frequency_and_keeps_the_centre():
    rate = 16000
    t = torch.arange(rate) / rate
    tone = torch.sin(2 * torch.pi * 400 * t) * (t > 0.3) * (t < 0.7)  # a 400 Hz burst in the middle
    faster = change_speed(tone, 1.25)
    assert faster.shape == tone.shape
    peak_hz = torch.fft.rfft(faster).abs().argmax().item()  # 1 Hz bins over a one-second clip
    assert peak_hz == pytest.approx(500, abs=3)
    active = (faster.abs() > 1e-3).nonzero().squeeze(1)
    burst = (active[-1] - active[0]).item() / rate
    assert burst == pytest.approx(0.4 / 1.25, abs=0.01)
    assert (active[0] + active[-1]).item() / 2 / rate == pytest.approx(0.5, abs=0.01)
    slower = change_speed(tone, 0.8)
    assert slower.shape == tone.shape
    assert torch.fft.rfft(slower).abs().argmax().item() == pytest.approx(320, abs=3)
    assert change_speed(tone, 1.0) is tone


def test_augment_draws_speed_in_range_and_rejects_a_bad_range():
    rate = 16000
    tone = torch.sin(2 * torch.pi * 1000 * torch.arange(rate) / rate)
    augment = Augment((), rate, shift_ms=0, gain_db=(0, 0), speed=(0.9, 1.1))
    peaks = [torch.fft.rfft(augment(tone, np.random.default_rng(s))).abs().argmax().item() for s in range(8)]
    assert all(895 <= p <= 1105 for p in peaks) and len(set(peaks)) > 1
    with pytest.raises(ValueError, match="speed needs 0 < low <= high"):
        Augment(speed=(1.1, 0.9))


def test_mask_envelopes_masks_runs_with_the_clip_mean():
    torch.manual_seed(0)
    x = torch.randn(64, 100, 32)
    y = mask_envelopes(x, time_masks=2, max_frames=10, channel_masks=2, max_channels=5)
    masked = y != x
    assert y.shape == x.shape and masked.any()
    fills = x.mean((1, 2))
    for b in range(4):
        assert torch.allclose(y[b][masked[b]], fills[b].expand(int(masked[b].sum())))
    time_rows = masked.all(2)  # frames masked across every channel
    channel_cols = masked.all(1)
    assert time_rows.sum(1).max() <= 20 and channel_cols.sum(1).max() <= 10
    # Every masked cell lies in a fully masked frame or a fully masked channel: masks are runs, not speckle.
    assert torch.equal(masked, time_rows[:, :, None] | channel_cols[:, None, :])
    assert torch.equal(mask_envelopes(x, 0, 10, 0, 5), x)


def test_filterbank_masks_only_in_training():
    bank = SSMFilterbank(channels=8, modes=2, f_max=3800, time_masks=2, time_mask_ms=100, channel_masks=1,
                         channel_mask_width=3)  # fmt: skip
    wave = torch.randn(4, 16000)
    bank.eval()
    clean = bank(wave)
    assert torch.equal(bank(wave), clean)
    bank.train()
    torch.manual_seed(1)
    assert not torch.equal(bank(wave), clean)
    assert bank.masks == (2, 10, 1, 3)


def test_load_noises_keeps_the_seconds_each_split_cuts(tmp_path):
    folder = tmp_path / "noise"
    folder.mkdir()
    for name, seconds in (("long.wav", 25.5), ("short.wav", 2.9)):
        sf.write(folder / name, np.random.default_rng(0).uniform(-0.5, 0.5, int(seconds * 16000)), 16000)
    whole = load_noises(folder, 16000)
    assert [n.shape[-1] for n in whole] == [408000, 46400]
    lengths = {
        part: [n.shape[-1] for n in load_noises(folder, 16000, part)] for part in ("train", "validation", "testing")
    }
    # long.wav: seconds 0-20 train, 21-22 validation, 23-24 testing (as training.data.speech_commands.noise_cuts);
    # short.wav: none
    assert lengths == {"train": [21 * 16000], "validation": [2 * 16000], "testing": [2 * 16000]}
    testing = load_noises(folder, 16000, "testing")[0]
    assert torch.equal(testing, whole[0][23 * 16000 : 25 * 16000])
    with pytest.raises(ValueError, match="unknown noise part"):
        load_noises(folder, 16000, "test")


class _Clips(torch.utils.data.Dataset):
    def __init__(self, labels):
        self.labels = labels

    def __len__(self):
        return len(self.labels)

    def __getitem__(self, index):
        return torch.sin(torch.arange(1000) * (0.05 + 0.01 * index)) * 0.1, self.labels[index], f"clip{index}.wav"


def test_with_noise_mixes_one_snr_the_same_way_every_run_and_spares_kept_labels():
    noise = torch.from_numpy(np.random.default_rng(1).standard_normal(5000).astype(np.float32))
    clips = _Clips([0, 0, 7])
    noisy = WithNoise(clips, [noise], snr_db=0.0, sample_rate=1000, keep=[7])
    first, again = noisy[0][0], WithNoise(clips, [noise], 0.0, 1000, keep=[7])[0][0]
    assert torch.equal(first, again)  # the same clip gets the same noise, whatever the run
    added = first - clips[0][0]
    assert 20 * torch.log10(clips[0][0].pow(2).mean().sqrt() / added.pow(2).mean().sqrt()).item() == pytest.approx(
        0, abs=0.1
    )
    assert not torch.allclose(noisy[1][0] - clips[1][0], added)  # another clip, another stretch of noise
    assert torch.equal(noisy[2][0], clips[2][0]) and noisy[2][1:] == (7, "clip2.wav")  # silence stays as it is
    with pytest.raises(ValueError, match="no background-noise"):
        WithNoise(clips, [], 0.0, 1000)


def test_mixup_blends_level_equalised_clips_and_their_labels():
    batch, length = 16, 400
    waveform = torch.randn(batch, length) * torch.logspace(-3, 1, batch)[:, None]  # levels 60 dB apart
    label = torch.arange(batch)  # one class per clip, so each target row names the clip's partner
    mixed, target = mixup(waveform, label, batch, alpha=0.4, generator=torch.Generator().manual_seed(0))
    assert mixed.shape == (batch, length) and mixed.dtype == waveform.dtype and target.shape == (batch, batch)
    torch.testing.assert_close(target.sum(dim=1), torch.ones(batch))
    unit = waveform.double() / waveform.double().pow(2).mean(dim=1, keepdim=True).sqrt()
    partners = set()
    for i in range(batch):
        lam = target[i, i].item()
        assert 0.5 <= lam <= 1  # its own clip is the larger part
        others = [j for j in range(batch) if j != i and target[i, j] > 0]
        j = others[0] if others else i  # a clip the permutation left in place is mixed with itself
        partners.add(j)
        expected = lam * unit[i] + (1 - lam) * unit[j]
        torch.testing.assert_close(mixed[i].double(), expected, rtol=1e-4, atol=1e-5)
    assert len(partners) == batch  # a permutation: every clip is someone's partner
    assert target.diagonal().min() < 0.99  # and the clips really are blended


def test_mixup_is_reproducible_with_a_generator_and_rejects_a_bad_alpha():
    waveform, label = torch.randn(8, 100), torch.randint(0, 3, (8,))
    first = mixup(waveform, label, 3, 0.2, torch.Generator().manual_seed(5))
    again = mixup(waveform, label, 3, 0.2, torch.Generator().manual_seed(5))
    assert all(torch.equal(a, b) for a, b in zip(first, again, strict=True))
    with pytest.raises(ValueError, match="mixup alpha must be positive"):
        mixup(waveform, label, 3, 0.0)
