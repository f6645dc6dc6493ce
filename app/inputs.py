"""What the app checks in its input before the model hears it: levels, noise, clips too short, WAVs cut short.

Nothing here imports Gradio or the model: `app.handlers` (files) and `app.live` (the word-finder) build on it.
"""

from __future__ import annotations

import math
import struct
from pathlib import Path

import numpy as np
from torch import Tensor

SILENCE_DBFS = -60.0  # RMS below this is treated as silence: no word to classify
NOISE_FLATNESS = 0.1  # even the most tonal frames of white/pink noise stay above this; speech frames fall below
MIN_SECONDS = 0.1  # the shortest syllable lasts about this long: a shorter clip cannot hold a word


def rms_dbfs(wave: Tensor) -> float:
    """Root-mean-square level in dB relative to full scale (−inf for digital silence)."""
    rms = float(wave.double().pow(2).mean().sqrt())
    return 20 * math.log10(rms) if rms > 0 else -math.inf


def spectral_flatness(wave: Tensor, frame: int = 512) -> float:
    """The 10th percentile over frames of the spectral flatness (geometric / arithmetic mean of the power).

    Voiced speech has tonal frames (flatness ≪ 0.1); white or pink noise has none. Only frames with energy count.
    """
    x = wave.double().numpy()
    if x.shape[0] < frame:
        x = np.pad(x, (0, frame - x.shape[0]))
    frames = np.lib.stride_tricks.sliding_window_view(x, frame)[:: frame // 2] * np.hanning(frame)
    power = np.abs(np.fft.rfft(frames, axis=-1)) ** 2 + 1e-20
    energy = power.mean(-1)
    loud = energy > energy.max() * 1e-3
    flatness = np.exp(np.log(power[loud]).mean(-1)) / power[loud].mean(-1)
    return float(np.percentile(flatness, 10))


def too_short(samples: int, rate: int) -> str | None:
    """Why a clip of `samples` at `rate` Hz is too short to hold a word (None when it is long enough)."""
    seconds = samples / rate
    if seconds >= MIN_SECONDS:
        return None
    length = f"{1000 * seconds:.1f} ms" if seconds < 0.01 else f"{1000 * seconds:.0f} ms"
    return (
        f"The clip lasts only {length} ({samples} samples): a spoken word takes at least {MIN_SECONDS:g} s. "
        "Record or upload a longer clip."
    )


def wav_shortfall(path: str | Path) -> tuple[float, float] | None:
    """For a RIFF/WAVE file whose data chunk promises more bytes than the file holds (a download or copy cut
    short): (seconds promised, seconds present). None for a whole WAV, or a file that is not a WAV.

    Audio readers quietly read what is there; the header is the only witness that the rest is missing. A data
    size of 0 or 0xFFFFFFFF is a streaming writer's placeholder, not a promise.
    """
    with open(path, "rb") as file:
        if file.read(12)[8:] != b"WAVE":
            return None
        size = Path(path).stat().st_size
        byte_rate = None
        while header := file.read(8):
            if len(header) < 8:
                return None
            chunk, length = struct.unpack("<4sI", header)
            if chunk == b"fmt ":
                byte_rate = struct.unpack("<HHII", file.read(12))[3]
                file.seek(length - 12 + length % 2, 1)
            elif chunk == b"data":
                present = size - file.tell()
                if length in (0, 0xFFFFFFFF) or length <= present or not byte_rate:
                    return None
                return length / byte_rate, present / byte_rate
            else:
                file.seek(length + length % 2, 1)
    return None
