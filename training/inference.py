"""One way to run an exported model on audio at any sampling rate; the app and `training.evaluate` share it.

wave_8k = prepare(wave_16k, 16000, 8000)            # (B, 16000) → (B, 8000)
logits = predict_logits(model, meta, wave_8k, 8000)  # an S4 model runs with dt_scale = 16000 / 8000 = 2
"""

from __future__ import annotations

import torch
from torch import Tensor, nn

from training.audio import DOWNSAMPLE, prepare

__all__ = ["DOWNSAMPLE", "dt_scale_for", "dt_scale_used", "predict_logits", "prepare"]


def dt_scale_for(meta: dict, rate: int) -> float:
    """Δ multiplier for audio at `rate` Hz: training rate / rate (2.0 for 8 kHz audio and a 16 kHz model)."""
    if rate <= 0:
        raise ValueError(f"sampling rate must be positive, got {rate}")
    return float(meta["sample_rate"]) / float(rate)


def dt_scale_used(meta: dict, rate: int, rescale: bool) -> float:
    """The Δ multiplier a model runs with at `rate` Hz: `dt_scale_for` for an S4 model when `rescale`, else 1.0.

    A CNN has no Δ to rescale; an S4 model with `rescale` off is the "Δ unchanged" run of an evaluation.
    """
    return dt_scale_for(meta, rate) if rescale and meta.get("model") == "s4" else 1.0


def predict_logits(
    model: nn.Module, meta: dict, waveform: Tensor, rate: int, rescale: bool = True, dt_scale: float | None = None
) -> Tensor:
    """waveform (B, L) at `rate` Hz → logits (B, n_classes), without gradients. Δ is scaled by `dt_scale`, or when
    None by `dt_scale_used(meta, rate, rescale)`: a caller that shows the scale decides it once and passes it."""
    if dt_scale is None:
        dt_scale = dt_scale_used(meta, rate, rescale)
    device = next(model.parameters()).device
    with torch.no_grad():
        return model(waveform.to(device=device, dtype=torch.float32), dt_scale=dt_scale)
