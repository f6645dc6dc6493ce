"""Training-time augmentation of one-second clips: speed, time shift, background noise, gain.

`Augment` changes one clip (L,) → (L,) with the randomness of the generator it is given; `Augmented` wraps a
dataset and gives each DataLoader worker its own seeded generator; `load_noises` reads the noise recordings;
`WithNoise` mixes noise into a dataset's clips at one SNR, the same for every run (robustness evaluation);
`mixup` blends the clips of a batch and their labels (Zhang et al., ICLR 2018).
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from torch.utils.data import Dataset, get_worker_info

from training.common.audio import load_audio
from training.data.speech_commands import noise_split_seconds

__all__ = ["Augment", "Augmented", "WithNoise", "load_noises", "change_speed", "mixup"]


def change_speed(wave: torch.Tensor, factor: float) -> torch.Tensor:
    """Play a clip `factor` times faster, (L,) → (L,): tempo and pitch both scale by `factor` (Kaldi's speed
    perturbation), by linear interpolation; the result is cut or zero-padded about the clip's centre, where
    Speech Commands puts its words.
    """
    length = wave.shape[-1]
    if factor == 1.0:
        return wave
    new_length = max(1, round(length / factor))
    stretched = F.interpolate(wave[None, None], size=new_length, mode="linear", align_corners=False)[0, 0]
    if new_length >= length:
        start = (new_length - length) // 2
        return stretched[start : start + length]
    before = (length - new_length) // 2
    return F.pad(stretched, (before, length - new_length - before))


def mixup(
    waveform: torch.Tensor, label: torch.Tensor, n_classes: int, alpha: float, generator: torch.Generator | None = None
) -> tuple[torch.Tensor, torch.Tensor]:
    """Blend each clip with another of the batch: (B, L), (B,) → mixed (B, L), target probabilities (B, n_classes).

    Clip i gets λ_i · x_i / rms(x_i) + (1 − λ_i) · x_j / rms(x_j) and target λ_i · y_i + (1 − λ_i) · y_j, with
    j a random permutation of the batch and λ_i = max(u, 1 − u), u ~ Beta(alpha, alpha): each clip stays the
    larger part of its own mixture, so accuracy against its own label still means something. Levels are
    equalised first because the model normalises each clip's level (a quiet clip would otherwise vanish under
    a loud partner whatever λ says).
    """
    if alpha <= 0:
        raise ValueError(f"mixup alpha must be positive, got {alpha}")
    batch = waveform.shape[0]
    # torch has no Beta sampler that takes a generator: seed numpy's from it (or from torch's global state).
    rng = np.random.default_rng(int(torch.randint(2**31, (1,), generator=generator)))
    u = torch.from_numpy(rng.beta(alpha, alpha, size=batch))
    lam = torch.maximum(u, 1 - u).to(waveform.device, waveform.dtype)[:, None]  # (B, 1)
    partner = torch.randperm(batch, generator=generator).to(waveform.device)
    level = waveform.pow(2).mean(dim=-1, keepdim=True).sqrt().clamp_min(1e-8)
    unit = waveform / level
    mixed = lam * unit + (1 - lam) * unit[partner]
    onehot = F.one_hot(label, n_classes).to(waveform.dtype)
    target = lam * onehot + (1 - lam) * onehot[partner]
    return mixed, target


class Augment:
    """Training-time augmentation of one clip (L,) → (L,): speed, time shift, background noise, gain.

    `noises` are mono recordings at the clip's sample rate; randomness comes from the `rng` passed in.
    `speed` (low, high) draws a speed factor uniformly; None keeps the speed.
    """

    def __init__(
        self,
        noises: Sequence[torch.Tensor] = (),
        sample_rate: int = 16000,
        shift_ms: float = 100,
        noise_prob: float = 0.8,
        snr_db: tuple[float, float] = (5, 30),
        gain_db: tuple[float, float] = (-12, 6),
        speed: tuple[float, float] | None = None,
    ) -> None:
        if speed is not None and not 0 < speed[0] <= speed[1]:
            raise ValueError(f"speed needs 0 < low <= high, got {speed}")
        self.noises = [n for n in noises if n.shape[-1] > 0]
        self.max_shift = int(shift_ms * sample_rate / 1000)
        self.noise_prob, self.snr_db, self.gain_db, self.speed = noise_prob, snr_db, gain_db, speed

    def __call__(self, wave: torch.Tensor, rng: np.random.Generator) -> torch.Tensor:
        length = wave.shape[-1]
        if self.speed is not None:
            wave = change_speed(wave, float(rng.uniform(*self.speed)))
        shift = int(rng.integers(-self.max_shift, self.max_shift + 1)) if self.max_shift else 0
        out = torch.zeros_like(wave)
        if shift >= 0:
            out[shift:] = wave[: length - shift]
        else:
            out[:shift] = wave[-shift:]
        if self.noises and rng.random() < self.noise_prob:
            out = out + self._noise(out, rng)
        out = out * 10 ** (rng.uniform(*self.gain_db) / 20)
        return out.clamp(-1.0, 1.0)

    def _noise(self, clip: torch.Tensor, rng: np.random.Generator) -> torch.Tensor:
        """A random stretch of a random noise recording, scaled to a random SNR against `clip` (L,)."""
        length = clip.shape[-1]
        noise = self.noises[int(rng.integers(len(self.noises)))]
        if noise.shape[-1] < length:
            noise = noise.repeat(length // noise.shape[-1] + 1)
        start = int(rng.integers(0, noise.shape[-1] - length + 1))
        segment = noise[start : start + length]
        signal_rms = clip.pow(2).mean().sqrt().clamp_min(1e-5)
        noise_rms = segment.pow(2).mean().sqrt().clamp_min(1e-8)
        return segment * (signal_rms / noise_rms / 10 ** (rng.uniform(*self.snr_db) / 20))


class Augmented(Dataset):
    """A dataset of `(waveform, label, path)` with `Augment` applied, by a generator per worker process seeded
    from the DataLoader's seed."""

    def __init__(self, dataset: Dataset, augment: Augment, seed: int) -> None:
        self.dataset, self.augment, self.seed = dataset, augment, seed
        self._rng: np.random.Generator | None = None
        self._rng_key: int | None = None

    def _generator(self) -> np.random.Generator:
        info = get_worker_info()
        # Worker seeds are drawn anew each epoch from the loader's seeded generator: reproducible, yet varied.
        key = info.seed if info is not None else self.seed
        if self._rng is None or self._rng_key != key:
            self._rng, self._rng_key = np.random.default_rng([self.seed, key]), key
        return self._rng

    def __len__(self) -> int:
        return len(self.dataset)

    def __getitem__(self, index: int) -> tuple[torch.Tensor, int, str]:
        wave, label, path = self.dataset[index]
        return self.augment(wave, self._generator()), label, path


def load_noises(noise_dir: str | os.PathLike, sample_rate: int, part: str | None = None) -> list[torch.Tensor]:
    """Every WAV in `noise_dir` → mono float32 (L,) at `sample_rate`. `part` ("train", "validation" or "testing")
    keeps only the seconds that `training.data.noise_cuts` gives to that split, so a dataset's own noise never
    brings its test silence into training, and noise mixed into test clips was never heard in training.
    """
    if part is not None and part not in ("train", "validation", "testing"):
        raise ValueError(f"unknown noise part {part!r}; choose train, validation or testing")
    noises = [load_audio(p, sample_rate) for p in sorted(Path(noise_dir).glob("*.wav"))]
    if part is not None:
        spans = [noise_split_seconds(n.shape[-1] // sample_rate)[part] for n in noises]
        noises = [n[span.start * sample_rate : span.stop * sample_rate] for n, span in zip(noises, spans, strict=True)]
    return [n for n in noises if n.shape[-1] > 0]


class WithNoise(Dataset):
    """A dataset's `(waveform, label, path)` with background noise mixed in at one SNR, for robustness evaluation.

    Clip i always gets the same stretch of noise (a generator seeded by i), so two models, or the same model at
    two rates, hear identical input. Clips whose label is in `keep` (silence: noise already) pass unchanged.
    """

    def __init__(
        self,
        dataset: Dataset,
        noises: Sequence[torch.Tensor],
        snr_db: float,
        sample_rate: int,
        keep: Sequence[int] = (),
    ) -> None:
        if not noises:
            raise ValueError("no background-noise recordings to mix in")
        self.dataset, self.keep = dataset, set(keep)
        fixed = (float(snr_db), float(snr_db))
        self.mix = Augment(noises, sample_rate, shift_ms=0, noise_prob=1.0, snr_db=fixed, gain_db=(0.0, 0.0))

    def __len__(self) -> int:
        return len(self.dataset)

    def __getitem__(self, index: int) -> tuple[torch.Tensor, int, str]:
        wave, label, path = self.dataset[index]
        if label in self.keep:
            return wave, label, path
        return self.mix(wave, np.random.default_rng(index)), label, path
