"""One way to run an exported model on audio at any sampling rate; the app and `training.evaluate` share it.

wave_8k = prepare(wave_16k, 16000, 8000)            # (B, 16000) → (B, 8000)
logits = predict_logits(model, meta, wave_8k, 8000)  # an S4 model runs with dt_scale = 16000 / 8000 = 2
"""

from __future__ import annotations

import torch
from torch import Tensor, nn

from training.audio import decimate, resample

DOWNSAMPLE = ("resample", "decimate")


def dt_scale_for(meta: dict, rate: int) -> float:
    """Δ multiplier for audio at `rate` Hz: training rate / rate (2.0 for 8 kHz audio and a 16 kHz model)."""
    if rate <= 0:
        raise ValueError(f"sampling rate must be positive, got {rate}")
    return float(meta["sample_rate"]) / float(rate)


def prepare(waveform: Tensor, native_rate: int, target_rate: int, downsample: str = "resample") -> Tensor:
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


def predict_logits(model: nn.Module, meta: dict, waveform: Tensor, rate: int, rescale: bool = True) -> Tensor:
    """waveform (B, L) at `rate` Hz → logits (B, n_classes), without gradients.

    S4 models run with dt_scale = meta["sample_rate"] / rate when `rescale`, else 1.0; a CNN always gets 1.0.
    """
    dt_scale = dt_scale_for(meta, rate) if rescale and meta.get("model") == "s4" else 1.0
    device = next(model.parameters()).device
    with torch.no_grad():
        return model(waveform.to(device=device, dtype=torch.float32), dt_scale=dt_scale)
