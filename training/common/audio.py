"""Audio I/O and the few waveform operations the project needs: mono float32 tensors of shape (L,).

Files are read with soundfile (WAV/FLAC/OGG/MP3 through libsndfile) and librosa for anything else;
never with torchaudio.load, which needs FFmpeg. Every failure is an `AudioError` naming the source.
"""

from __future__ import annotations

import os
import warnings
from pathlib import Path

import numpy as np
import soundfile as sf
import torch
import torchaudio.functional as AF

MIN_RATE = 1000
MAX_RATE = 384_000
DEFAULT_MAX_BYTES = 50_000_000
DOWNSAMPLE = ("resample", "decimate")  # how `prepare` makes a lower rate


class AudioError(ValueError):
    """Audio that cannot be used: missing, unreadable, empty, non-finite, absurd rate or too large."""


def to_mono_float32(samples: np.ndarray, sample_rate: int, name: str = "<array>") -> torch.Tensor:
    """Validate raw samples (int16/int32/float, (L,) or (L, C)) → mono float32 tensor (L,) in [-1, 1].

    Integer PCM is scaled by its type's full range; channels are averaged.
    """
    if not MIN_RATE <= int(sample_rate) <= MAX_RATE:
        raise AudioError(f"{name}: absurd sample rate {sample_rate} Hz (expected {MIN_RATE}..{MAX_RATE})")
    array = np.asarray(samples)
    if array.ndim not in (1, 2):
        raise AudioError(f"{name}: expected samples of shape (L,) or (L, C), got {array.shape}")
    if np.issubdtype(array.dtype, np.integer):
        array = array.astype(np.float32) / float(np.iinfo(array.dtype).max + 1)
    elif np.issubdtype(array.dtype, np.floating):
        array = array.astype(np.float32)
    else:
        raise AudioError(f"{name}: unsupported sample type {array.dtype}")
    if array.ndim == 2:
        array = array.mean(axis=1)
    if array.shape[0] == 0:
        raise AudioError(f"{name}: zero-length audio")
    if not np.isfinite(array).all():
        raise AudioError(f"{name}: audio contains NaN or infinite samples")
    return torch.from_numpy(np.ascontiguousarray(array))


def _read(path: Path) -> tuple[np.ndarray, int]:
    try:
        samples, rate = sf.read(str(path), dtype="float32", always_2d=False)
        return samples, int(rate)
    except (sf.LibsndfileError, RuntimeError, TypeError) as sf_error:
        soundfile_reason = str(sf_error)
    try:
        import librosa  # imported late: slow to import and only needed for exotic formats

        with warnings.catch_warnings():  # its "trying audioread" notices would only repeat our error
            warnings.simplefilter("ignore")
            samples, rate = librosa.load(str(path), sr=None, mono=False, dtype=np.float32)
    except Exception as error:  # librosa raises many unrelated types for a bad file
        # Some of them carry no text (audioread's NoBackendError): name only the reasons that say something.
        reasons = "; ".join([soundfile_reason, *([f"librosa: {error}"] if str(error) else [])])
        raise AudioError(f"{path}: unreadable or corrupt audio file ({reasons})") from error
    return (samples.T if samples.ndim == 2 else samples), int(rate)


def load_audio_with_rate(path: str | os.PathLike, *, max_bytes: int = DEFAULT_MAX_BYTES) -> tuple[torch.Tensor, int]:
    """Read a file at its native rate → (mono float32 (L,), sample rate in Hz)."""
    path = Path(path)
    if not path.is_file():
        raise AudioError(f"{path}: file not found")
    size = path.stat().st_size
    if size > max_bytes:
        raise AudioError(f"{path}: file too large ({size} bytes > limit of {max_bytes} bytes)")
    if size == 0:
        raise AudioError(f"{path}: zero-length audio (empty file)")
    samples, rate = _read(path)
    return to_mono_float32(samples, rate, name=str(path)), rate


def load_audio(
    path: str | os.PathLike,
    sample_rate: int | None = 16000,
    length: int | None = None,
    *,
    max_bytes: int = DEFAULT_MAX_BYTES,
) -> torch.Tensor:
    """Read a file → mono float32 (L,), resampled to `sample_rate` (None: native) and fitted to `length`."""
    wave, rate = load_audio_with_rate(path, max_bytes=max_bytes)
    if sample_rate is not None and rate != sample_rate:
        wave = resample(wave, rate, sample_rate)
    if length is not None:
        wave = pad_or_trim(wave, length)
    return wave


def resample(wave: torch.Tensor, orig_rate: int, new_rate: int) -> torch.Tensor:
    """Band-limited (anti-aliased) resampling, (..., L) → (..., L · new_rate / orig_rate)."""
    if orig_rate == new_rate:
        return wave
    return AF.resample(wave, int(orig_rate), int(new_rate))


def pad_or_trim(wave: torch.Tensor, length: int) -> torch.Tensor:
    """(..., L) → (..., length): zeros appended at the end, or the tail cut off."""
    current = wave.shape[-1]
    if current >= length:
        return wave[..., :length]
    return torch.nn.functional.pad(wave, (0, length - current))


def decimate(wave: torch.Tensor, factor: int) -> torch.Tensor:
    """(..., L) → (..., ceil(L / factor)) by keeping every factor-th sample, without a low-pass.

    This aliases on purpose: it is how the S4 paper made its 8 kHz Speech Commands test set.
    """
    if factor < 1:
        raise ValueError(f"decimation factor must be >= 1, got {factor}")
    return wave[..., ::factor]


def prepare(waveform: torch.Tensor, native_rate: int, target_rate: int, downsample: str = "resample") -> torch.Tensor:
    """(..., L) at native_rate → (..., L · target_rate / native_rate) at target_rate.

    "resample": band-limited (torchaudio); "decimate": keep every k-th sample, no low-pass (the S4 paper's
    8 kHz test), only for rates that divide native_rate.
    """
    if downsample not in DOWNSAMPLE:
        raise ValueError(f"unknown downsample {downsample!r}; choose 'resample' or 'decimate'")
    if target_rate == native_rate:
        return waveform
    if downsample == "decimate":
        if target_rate > native_rate or native_rate % target_rate:
            raise ValueError(f"decimate needs a rate dividing {native_rate} Hz, got {target_rate}")
        return decimate(waveform, native_rate // target_rate)
    return resample(waveform, native_rate, target_rate)
