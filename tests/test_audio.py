"""training.common.audio: loading, validation and the waveform helpers, including every bad-input message."""

from __future__ import annotations

import numpy as np
import pytest
import soundfile as sf
import torch

from training.common.audio import (
    AudioError,
    decimate,
    load_audio,
    load_audio_with_rate,
    pad_or_trim,
    resample,
    to_mono_float32,
)


def tone(rate: int, seconds: float = 0.5, freq: float = 440.0) -> np.ndarray:
    t = np.arange(int(rate * seconds)) / rate
    return (0.5 * np.sin(2 * np.pi * freq * t)).astype(np.float32)


def test_load_wav_int16_is_mono_float32(tmp_path):
    path = tmp_path / "a.wav"
    sf.write(path, tone(16000), 16000, subtype="PCM_16")
    wave = load_audio(path)
    assert wave.dtype == torch.float32 and wave.shape == (8000,)
    assert abs(wave.abs().max().item() - 0.5) < 1e-3


def test_load_resamples_pads_and_keeps_native_rate(tmp_path):
    path = tmp_path / "a.flac"
    sf.write(path, tone(8000), 8000)
    assert load_audio(path).shape == (8000,)  # 0.5 s at 16 kHz
    assert load_audio(path, sample_rate=None).shape == (4000,)
    assert load_audio(path, length=16000).shape == (16000,)
    assert load_audio(path, length=100).shape == (100,)
    wave, rate = load_audio_with_rate(path)
    assert rate == 8000 and wave.shape == (4000,)


def test_stereo_file_is_averaged(tmp_path):
    path = tmp_path / "s.wav"
    left, right = np.full(100, 0.5, np.float32), np.full(100, -0.25, np.float32)
    sf.write(path, np.stack([left, right], axis=1), 16000, subtype="FLOAT")
    wave = load_audio(path)
    assert wave.shape == (100,)
    assert torch.allclose(wave, torch.full((100,), 0.125))


def test_missing_file(tmp_path):
    with pytest.raises(AudioError, match=r"nope\.wav: file not found"):
        load_audio(tmp_path / "nope.wav")


def test_corrupt_file(tmp_path):
    path = tmp_path / "junk.wav"
    path.write_bytes(b"this is not audio at all" * 10)
    with pytest.raises(AudioError, match=r"junk\.wav: unreadable or corrupt audio file") as raised:
        load_audio(path)
    assert "librosa: )" not in str(raised.value)  # a reader that gives no reason adds no empty one


def test_truncated_file(tmp_path):
    path = tmp_path / "cut.wav"
    sf.write(path, tone(16000), 16000, subtype="PCM_16")
    path.write_bytes(path.read_bytes()[:30])  # cut inside the header
    with pytest.raises(AudioError, match=r"cut\.wav: unreadable or corrupt"):
        load_audio(path)


def test_empty_file_and_zero_frames(tmp_path):
    empty = tmp_path / "empty.wav"
    empty.write_bytes(b"")
    with pytest.raises(AudioError, match=r"empty\.wav: zero-length audio"):
        load_audio(empty)
    silent = tmp_path / "noframes.wav"
    sf.write(silent, np.zeros(0, np.float32), 16000)
    with pytest.raises(AudioError, match=r"noframes\.wav: zero-length audio"):
        load_audio(silent)


def test_nan_samples_in_file(tmp_path):
    path = tmp_path / "nan.wav"
    samples = tone(16000)
    samples[10] = np.nan
    sf.write(path, samples, 16000, subtype="FLOAT")
    with pytest.raises(AudioError, match=r"nan\.wav: audio contains NaN or infinite samples"):
        load_audio(path)


def test_absurd_sample_rate_in_file(tmp_path):
    path = tmp_path / "slow.wav"
    sf.write(path, tone(100), 100, subtype="PCM_16")
    with pytest.raises(AudioError, match=r"slow\.wav: absurd sample rate 100 Hz"):
        load_audio(path)


def test_file_too_large(tmp_path):
    path = tmp_path / "big.wav"
    sf.write(path, tone(16000), 16000, subtype="PCM_16")
    with pytest.raises(AudioError, match=r"big\.wav: file too large \(\d+ bytes > limit of 1000 bytes\)"):
        load_audio(path, max_bytes=1000)


def test_to_mono_float32_scales_integers_and_averages_channels():
    int16 = np.array([[32767, -32768], [0, 16384]], dtype=np.int16)
    wave = to_mono_float32(int16, 48000)
    assert wave.dtype == torch.float32 and wave.shape == (2,)
    assert torch.allclose(wave, torch.tensor([(32767 - 32768) / 65536, 0.25]), atol=1e-6)
    int32 = np.array([2**30], dtype=np.int32)
    assert to_mono_float32(int32, 16000).item() == pytest.approx(0.5)


@pytest.mark.parametrize(
    ("samples", "rate", "message"),
    [
        (np.zeros(0, np.int16), 16000, "mic: zero-length audio"),
        (np.array([0.0, np.inf]), 16000, "mic: audio contains NaN or infinite samples"),
        (np.array([np.nan, 0.0]), 16000, "mic: audio contains NaN or infinite samples"),
        (np.zeros(10), 999, "mic: absurd sample rate 999 Hz"),
        (np.zeros(10), 400_000, "mic: absurd sample rate 400000 Hz"),
        (np.zeros((2, 2, 2)), 16000, r"mic: expected samples of shape \(L,\) or \(L, C\)"),
        (np.array(["a"]), 16000, "mic: unsupported sample type"),
    ],
)
def test_to_mono_float32_rejects(samples, rate, message):
    with pytest.raises(AudioError, match=message):
        to_mono_float32(samples, rate, name="mic")


def test_audio_error_is_a_value_error():
    assert issubclass(AudioError, ValueError)


def test_resample_keeps_a_low_tone_and_changes_length():
    wave = torch.from_numpy(tone(16000, seconds=1.0, freq=200))
    half = resample(wave, 16000, 8000)
    assert half.shape == (8000,)
    assert torch.allclose(half[100:-100], torch.from_numpy(tone(8000, 1.0, 200))[100:-100], atol=1e-2)
    assert resample(wave, 16000, 16000) is wave


def test_resample_removes_what_decimate_aliases():
    # 7 kHz is above the 4 kHz Nyquist limit of 8 kHz: resample filters it out, decimation folds it to 1 kHz.
    wave = torch.from_numpy(tone(16000, seconds=1.0, freq=7000))
    assert resample(wave, 16000, 8000)[200:-200].abs().max() < 0.02
    assert decimate(wave, 2).abs().max() > 0.4


def test_decimate_and_pad_or_trim():
    wave = torch.arange(10.0)
    assert torch.equal(decimate(wave, 2), torch.tensor([0.0, 2, 4, 6, 8]))
    assert decimate(wave, 3).shape == (4,)
    with pytest.raises(ValueError, match="factor must be >= 1"):
        decimate(wave, 0)
    assert torch.equal(pad_or_trim(wave, 4), torch.arange(4.0))
    padded = pad_or_trim(wave, 12)
    assert padded.shape == (12,) and padded[10:].eq(0).all() and torch.equal(padded[:10], wave)
