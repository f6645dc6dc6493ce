"""Signal effects for training.synth: trimmed speech → a varied one-second clip, and generated background noise."""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING

import numpy as np

from training.data.tts import RATE, VOICE_SEMITONES, run_program

if TYPE_CHECKING:
    from training.data.tts import Voice

CLIP = RATE  # samples in a one-second clip
NOISE_KINDS = ("white", "pink", "brown", "hum", "babble", "fan")
# Per-clip variation; recorded in the manifest.
PARAMS = {
    "word_seconds": (0.35, 0.85),  # trimmed length; real SC words measure ~0.3-0.75 s
    "voice_semitones": VOICE_SEMITONES,
    "clip_cents_jitter": 60,
    "speed": (0.92, 1.08),
    "reverb_prob": 0.5,
    "reverb_room_scale": (10, 100),
    "filter_prob": 0.3,
    "level_dbfs": (-32.0, -12.0),
    "noise_prob": 0.75,
    "snr_db": (5.0, 35.0),
    "floor_dbfs": (-75.0, -55.0),
}


def _effects(speech: np.ndarray, voice: Voice, rng: np.random.Generator) -> np.ndarray:
    """One rendition: pitch, tempo to a 0.35-0.85 s word, optional filter and room reverb, speed (last)."""
    speed = float(rng.uniform(*PARAMS["speed"]))
    target = float(rng.uniform(*PARAMS["word_seconds"]))
    tempo = float(np.clip(len(speech) / RATE / (target * speed), 0.35, 2.5))
    cents = int(voice.semitones * 100 + rng.integers(-PARAMS["clip_cents_jitter"], PARAMS["clip_cents_jitter"] + 1))
    chain = []
    if rng.random() < PARAMS["filter_prob"]:
        # Cheap microphones and phones: a band limit, first while the rate is 16 kHz (pitch changes it).
        if rng.random() < 0.5:
            chain += ["highpass", str(int(rng.integers(100, 400)))]
        else:
            chain += ["lowpass", str(int(rng.integers(2500, 7000)))]
    chain += ["pitch", str(cents), "tempo", "-s", f"{tempo:.3f}"]
    if rng.random() < PARAMS["reverb_prob"]:
        room = int(rng.integers(*PARAMS["reverb_room_scale"]))
        chain += ["reverb", str(int(rng.integers(20, 90))), "50", str(room), "100",
                  str(int(rng.integers(0, 30))), str(int(rng.integers(-8, 1)))]  # fmt: skip
    chain += ["speed", f"{speed:.3f}", "rate", str(RATE), "channels", "1"]
    fmt = ["-t", "f32", "-r", str(RATE), "-c", "1"]
    raw = run_program(["sox", "-R", *fmt, "-", *fmt, "-", *chain], stdin=speech.astype(np.float32).tobytes())
    return np.frombuffer(raw, dtype=np.float32)


def _rms(x: np.ndarray) -> float:
    return float(np.sqrt(np.mean(np.square(x, dtype=np.float64)) + 1e-12))


def render_clip(speech: np.ndarray, voice: Voice, noises: Sequence[np.ndarray], rng: np.random.Generator) -> np.ndarray:
    """Trimmed speech (L,) → one-second clip (16000,) float32: effects, random offset, level, noise."""
    word = _effects(speech, voice, rng)[:CLIP]
    word = word * (10 ** (rng.uniform(*PARAMS["level_dbfs"]) / 20) / _rms(word))
    clip = np.zeros(CLIP, dtype=np.float64)
    offset = int(rng.integers(0, CLIP - len(word) + 1))
    clip[offset : offset + len(word)] = word
    if noises and rng.random() < PARAMS["noise_prob"]:
        noise = noises[int(rng.integers(len(noises)))]
        start = int(rng.integers(0, len(noise) - CLIP + 1))
        segment = noise[start : start + CLIP]
        snr = rng.uniform(*PARAMS["snr_db"])
        clip += segment * (_rms(word) / _rms(segment) / 10 ** (snr / 20))
    floor = 10 ** (rng.uniform(*PARAMS["floor_dbfs"]) / 20)
    clip += rng.standard_normal(CLIP) * floor  # real recordings are never digitally silent
    peak = np.abs(clip).max()
    if peak > 0.99:
        clip *= 0.99 / peak
    return clip.astype(np.float32)


def make_noise(kind: str, seconds: float, rng: np.random.Generator) -> np.ndarray:
    """A background-noise recording (L,) float32 at 16 kHz, peak 0.5."""
    n = int(seconds * RATE)
    freqs = np.fft.rfftfreq(n, 1 / RATE)
    white = rng.standard_normal(n)

    def shaped(gain: np.ndarray) -> np.ndarray:
        return np.fft.irfft(np.fft.rfft(white) * gain, n)

    t = np.arange(n) / RATE
    if kind == "white":
        x = white
    elif kind == "pink":
        x = shaped(1 / np.sqrt(np.maximum(freqs, 20)))
    elif kind == "brown":
        x = shaped(1 / np.maximum(freqs, 20))
    elif kind == "hum":
        mains = float(rng.choice([50.0, 60.0]))
        x = sum(np.sin(2 * np.pi * mains * k * t + rng.uniform(0, 2 * np.pi)) / k for k in range(1, 8))
        x = x + 0.05 * white
    elif kind == "babble":
        # Several "talkers": speech-band noise switched on and off at syllable rate (3-6 Hz).
        x = np.zeros(n)
        for _ in range(6):
            formant = rng.uniform(300, 2500)
            band = np.exp(-0.5 * ((freqs - formant) / (formant * 0.4)) ** 2)
            talker = np.fft.irfft(np.fft.rfft(rng.standard_normal(n)) * band, n)
            envelope = np.clip(np.sin(2 * np.pi * rng.uniform(3, 6) * t + rng.uniform(0, 6.3)), 0, None)
            x += talker * envelope
    elif kind == "fan":
        x = shaped(1 / np.maximum(freqs, 60) ** 0.8) * (1 + 0.2 * np.sin(2 * np.pi * rng.uniform(0.2, 1) * t))
        x = x + 0.3 * np.sin(2 * np.pi * rng.uniform(90, 200) * t) * np.std(x)
    else:
        raise ValueError(f"unknown noise kind {kind!r}; choose from {NOISE_KINDS}")
    return (0.5 * x / np.abs(x).max()).astype(np.float32)
