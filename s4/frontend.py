"""A learnable S4D filterbank on the raw waveform: the first layer of a keyword spotter.

One input channel feeds `channels` diagonal SSMs; each is a sum of `modes` damped resonators (a diagonal mode
with λ = −a + iω rings at ω/2π Hz with bandwidth a/π), started at neighbouring points of a mel scale. Their
outputs are rectified, averaged over windows of a fixed duration (`hop_ms`) and log-compressed: a learnable,
rate-aware log-filterbank. Because the windows are a duration, not a number of samples, the frames leave at
1000/hop_ms Hz whatever the input rate, so the layers after it run at the same step at every rate; only this
layer's Δ is rescaled.

Two envelopes, two models (the weights of one do not carry to the other):
- "rectified": the mean of |y| over each frame, y the real filter output at the audio rate (n = 2L inverse FFTs
  per channel);
- "analytic": (2/π) × the mean of the analytic signal's magnitude |y + i·H(y)| at `band_hz`·hop_ms/1000 points
  per frame, each channel band-limited to a slice of `band_hz` around its modes. The slice is cut from the input
  spectrum, multiplied by the filter's response and brought to baseband by a short inverse FFT (the shift leaves
  the magnitude unchanged): W = band_hz · (n / sample rate) bins per channel instead of n. The factor 2/π makes
  the two agree on narrow-band sound (the mean of |cos| is 2/π); outside the slice the filter hears nothing.
"""

from __future__ import annotations

import inspect
import math

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from s4.ssm import DiagSSM

LOG_FLOOR = 1e-3  # added before the log: an envelope 60 dB below the clip's RMS counts as silence
RMS_FLOOR = 1e-4  # a clip quieter than −80 dBFS is not amplified further: it is digital silence
# Clips are filtered a few at a time so that no intermediate exceeds this: glibc serves larger blocks by mmap
# and returns them on free, and zeroing fresh pages then costs as much system time as the FFTs themselves.
CHUNK_BYTES = 24 * 2**20
ENVELOPES = ("rectified", "analytic")


def mel_frequencies(n: int, f_min: float, f_max: float) -> Tensor:
    """n frequencies in Hz, equally spaced on the mel scale m = 2595·log10(1 + f/700), float64 (n,)."""
    mel = torch.linspace(2595 * math.log10(1 + f_min / 700), 2595 * math.log10(1 + f_max / 700), n, dtype=torch.float64)
    return 700 * (10 ** (mel / 2595) - 1)


def normalize_level(waveform: Tensor) -> Tensor:
    """Per-clip RMS normalisation, (B, L) → (B, L) with unit RMS: a word means the same whispered or shouted."""
    rms = waveform.pow(2).mean(-1, keepdim=True).sqrt().clamp_min(RMS_FLOOR)
    return waveform / rms


def mask_envelopes(x: Tensor, time_masks: int, max_frames: int, channel_masks: int, max_channels: int) -> Tensor:
    """SpecAugment's time and channel masking (Park et al. 2019) on log-envelopes, (B, T, C) → (B, T, C).

    Each clip gets `time_masks` runs of 0..max_frames frames and `channel_masks` runs of 0..max_channels
    channels, at uniform positions; masked cells take the clip's mean, so a mask reads as "nothing special
    here" rather than as a silence the model could learn to look for. Randomness: torch's global generator.
    """
    B, T, C = x.shape
    keep = torch.ones(B, T, C, dtype=torch.bool, device=x.device)
    for count, widest, size, axis in ((time_masks, max_frames, T, 1), (channel_masks, max_channels, C, 2)):
        position = torch.arange(size, device=x.device)
        for _ in range(count):
            width = torch.randint(0, min(widest, size) + 1, (B, 1), device=x.device)
            start = (torch.rand(B, 1, device=x.device) * (size - width + 1)).floor()
            inside = (position >= start) & (position < start + width)  # (B, size)
            keep &= ~inside.unsqueeze(3 - axis)
    return torch.where(keep, x, x.detach().mean((1, 2), keepdim=True))


class SSMFilterbank(nn.Module):
    """waveform (B, L) at sample_rate / dt_scale → log-envelopes (B, T, channels + high_channels), T = ⌈L / hop⌉ frames,
    hop = round(hop_ms · sample_rate / (1000 · dt_scale)) samples.

    The SSM runs with Δ = one sample at `sample_rate` times dt_scale, so a mode keeps its frequency in Hz at any
    input rate; modes above `alias_cutoff` of the input's Nyquist frequency are switched off (`DiagSSM`).
    `keep_band`: no mode may learn its way above f_max (`DiagSSM(max_frequency=...)`), so a band chosen under
    the Nyquist frequency of a lower rate stays there, and the filterbank hears the same at that rate.
    `high_channels` > 0 adds a band from f_max to `high_f_max` (kept under high_f_max by keep_band) after the
    `channels` of the low band: heard at rates whose Nyquist frequency is above high_f_max, read as missing
    below (`_drop_high_band`), and dropped from a random `high_drop` of training clips so that the blocks after
    the filterbank know both.
    Initial modes: mel-spaced from f_min to f_max, bandwidth = the spacing to their neighbours, unit peak gain.
    In training mode, `time_masks` × up to `time_mask_ms` and `channel_masks` × up to `channel_mask_width`
    channels of the output are masked (`mask_envelopes`); evaluation never masks.
    """

    def __init__(
        self,
        channels: int = 64,
        modes: int = 4,
        f_min: float = 50.0,
        f_max: float = 7800.0,
        hop_ms: float = 10.0,
        sample_rate: int = 16000,
        alias_cutoff: float = 1.0,
        time_masks: int = 0,
        time_mask_ms: float = 0.0,
        channel_masks: int = 0,
        channel_mask_width: int = 0,
        keep_band: bool = False,
        high_channels: int = 0,
        high_f_max: float | None = None,
        high_drop: float = 0.0,
        envelope: str = "rectified",
        band_hz: float = 400.0,
    ) -> None:
        super().__init__()
        if not 0 < f_min < f_max < sample_rate / 2:
            raise ValueError(f"need 0 < f_min < f_max < {sample_rate / 2:g} Hz (Nyquist), got {f_min}, {f_max}")
        if hop_ms * sample_rate / 1000 < 1:
            raise ValueError(f"hop_ms={hop_ms} is shorter than one sample at {sample_rate} Hz")
        if high_channels and not (high_f_max is not None and f_max < high_f_max < sample_rate / 2):
            raise ValueError(f"high_channels needs f_max < high_f_max < {sample_rate / 2:g} Hz, got {high_f_max}")
        if not 0 <= high_drop <= 1:
            raise ValueError(f"high_drop is a probability in [0, 1], got {high_drop}")
        if envelope not in ENVELOPES:
            raise ValueError(f"unknown envelope {envelope!r}; choose one of {', '.join(ENVELOPES)}")
        # Points per frame of the analytic envelope: the band's width in multiples of the frame rate.
        self.envelope, self.points = envelope, max(1, round(band_hz * hop_ms / 1000))
        if envelope == "analytic" and not 0 < band_hz < sample_rate / 2:
            raise ValueError(f"band_hz must be in (0, {sample_rate / 2:g}) Hz, got {band_hz}")
        self.channels, self.sample_rate, self.hop_ms = channels + high_channels, sample_rate, hop_ms
        self.low_channels, self.high_f_max, self.high_drop = channels, high_f_max, high_drop
        self.masks = (time_masks, round(time_mask_ms / hop_ms), channel_masks, channel_mask_width)
        bands = [(channels, f_min, f_max), (high_channels, f_max, high_f_max)][: 2 if high_channels else 1]
        # Mode frequencies of each band, mel-spaced, with a neighbour either side to set their bandwidths.
        grids = [mel_frequencies(count * modes + 2, low, high) for count, low, high in bands]
        frequencies = torch.cat([grid[1:-1] for grid in grids])  # Hz
        bandwidth = torch.cat([(grid[2:] - grid[:-2]) / 2 for grid in grids])  # Hz, the local spacing
        # Each band's top as a fraction of π at Δ = one sample.
        top = [2 * high / sample_rate for count, _, high in bands for _ in range(count)] if keep_band else None
        self.ssm = DiagSSM(
            self.channels, 2 * modes, "lin", "zoh", dt_min=1.0, dt_max=1.0, alias_cutoff=alias_cutoff, max_frequency=top
        )
        omega = 2 * math.pi * frequencies / sample_rate  # rad per sample
        neg_real = math.pi * bandwidth / sample_rate
        with torch.no_grad():
            self.ssm.log_neg_real.copy_(torch.log(neg_real).view(self.channels, modes))
            self.ssm.imag.copy_(omega.view(self.channels, modes))
            # ZOH gain at resonance ≈ 1/a: C = a makes every mode's peak gain about one.
            self.ssm.C.copy_(torch.stack([neg_real, torch.zeros_like(neg_real)], -1).view(self.channels, modes, 2))

    def hop(self, dt_scale: float = 1.0) -> int:
        """Samples per frame at the input rate sample_rate / dt_scale."""
        return max(1, round(self.hop_ms * self.sample_rate / (1000 * dt_scale)))

    def forward(self, waveform: Tensor, dt_scale: float = 1.0) -> Tensor:
        """waveform (B, L) → log-envelopes (B, ⌈L / hop⌉, channels), float32."""
        with torch.autocast(waveform.device.type, enabled=False):
            u = normalize_level(waveform.float())
            kernel = self.ssm.kernel(waveform.shape[-1], dt_scale)
            envelope = (self._analytic if self.envelope == "analytic" else self._rectified)(u, kernel, dt_scale)
        envelope = torch.log(envelope + LOG_FLOOR).transpose(1, 2)
        if self.channels > self.low_channels:
            envelope = self._drop_high_band(envelope, dt_scale)
        return mask_envelopes(envelope, *self.masks) if self.training and any(self.masks) else envelope

    def _rectified(self, u: Tensor, kernel: Tensor, dt_scale: float) -> Tensor:
        """u (B, L), kernel (channels, L) → mean |u * kernel| per frame, (B, channels, ⌈L / hop⌉)."""
        L, hop = u.shape[-1], self.hop(dt_scale)
        n = 2 * L
        # One input channel: its FFT is taken once and shared by every filter.
        U, K = torch.fft.rfft(u, n=n), torch.fft.rfft(kernel, n=n)  # (B, n/2 + 1), (channels, n/2 + 1)
        chunk = max(1, CHUNK_BYTES // (K.numel() * K.element_size()))
        return torch.cat([
            F.avg_pool1d(torch.fft.irfft(part[:, None] * K, n=n)[..., :L].abs(), hop, hop, ceil_mode=True)
            for part in U.split(chunk)
        ])  # fmt: skip

    def _analytic(self, u: Tensor, kernel: Tensor, dt_scale: float) -> Tensor:
        """u (B, L), kernel (channels, L) → (2/π)·mean |analytic signal| of each band-limited channel per frame,
        (B, channels, ⌈L / hop⌉).

        With T frames and n = 2·T·hop (a linear convolution, no wrap-around), a slice of W = points·2T bins
        starting at bin s, brought to baseband, is the analytic signal at t = τ·hop/points, τ < 2T·points:
            a(t_τ) = (2/n)·Σ_j Y_{s+j} e^{i2π(s+j)t_τ/n},   |a(t_τ)| = (2W/n)·|IFFT_W(Y_s … Y_{s+W−1})[τ]|.
        """
        L, hop = u.shape[-1], self.hop(dt_scale)
        frames = -(-L // hop)
        points = min(self.points, max(1, hop // 2))  # so that the slice fits in the n/2 + 1 bins
        n, width = 2 * frames * hop, points * 2 * frames
        starts = self.band_starts(n, width, dt_scale)  # (channels,)
        bins = starts[:, None] + torch.arange(width, device=u.device)  # (channels, W)
        U = torch.fft.rfft(u, n=n)[:, bins]  # (B, channels, W)
        K = torch.fft.rfft(kernel, n=n).gather(1, bins)  # (channels, W)
        baseband = torch.fft.ifft(U * K, dim=-1).abs()  # (B, channels, 2T·points)
        scale = 4 * width / (math.pi * n)
        return scale * baseband.unflatten(-1, (2 * frames, points)).mean(-1)[..., :frames]

    def band_starts(self, n: int, width: int, dt_scale: float = 1.0) -> Tensor:
        """First rfft bin (of n at the input rate) of each channel's slice of `width` bins: centred between its
        lowest and highest mode, which the slice follows as they learn (no gradient through the choice), (channels,).
        """
        with torch.no_grad():
            hz = self.ssm.mode_frequencies() * self.sample_rate / (2 * math.pi)  # (channels, modes)
            centre = (hz.amin(-1) + hz.amax(-1)) / 2
            bin_hz = self.sample_rate / dt_scale / n
            start = torch.round(centre / bin_hz).long() - width // 2
            return start.clamp(0, n // 2 + 1 - width)

    def _drop_high_band(self, envelope: Tensor, dt_scale: float) -> Tensor:
        """(B, T, channels) → the same, the high band's channels set to the mean of the low band's for every clip
        at a rate whose Nyquist frequency is under high_f_max, and, in training, for a random `high_drop` of
        clips: a missing band then reads the same at every rate, and the blocks after it have learned it."""
        missing = torch.full((envelope.shape[0], 1, 1), self.high_f_max >= self.sample_rate / (2 * dt_scale))
        if self.training:
            missing = missing | (torch.rand(missing.shape) < self.high_drop)
        low = envelope[..., : self.low_channels]
        fill = low.detach().mean((1, 2), keepdim=True).expand(-1, envelope.shape[1], self.channels - self.low_channels)
        high = torch.where(missing.to(envelope.device), fill, envelope[..., self.low_channels :])
        return torch.cat([low, high], -1)


def build_filterbank(options: dict) -> SSMFilterbank:
    """An `SSMFilterbank` from a config mapping; an unknown option is a ValueError that names it."""
    known = set(inspect.signature(SSMFilterbank).parameters)
    unknown = sorted(set(options) - known)
    if unknown:
        raise ValueError(f"unknown frontend option(s) {', '.join(unknown)}; known: {', '.join(sorted(known))}")
    return SSMFilterbank(**options)
