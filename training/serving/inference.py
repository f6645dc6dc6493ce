"""One way to run an exported model on audio at any sampling rate; the app and `training.evaluate` share it.

wave_8k = prepare(wave_16k, 16000, 8000)            # (B, 16000) → (B, 8000)
logits = predict_logits(model, meta, wave_8k, 8000)  # an S4 model runs with dt_scale = 16000 / 8000 = 2
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import torch
from torch import Tensor, nn
from torch.utils.data import DataLoader, Dataset

from training.common.audio import DOWNSAMPLE, prepare

__all__ = ["DOWNSAMPLE", "dataset_logits", "dt_scale_for", "dt_scale_used", "predict_logits", "prepare"]


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


def dataset_logits(
    model: nn.Module,
    meta: dict,
    clips: Dataset,
    runs: Sequence[tuple[str, int, bool]],
    downsample: str = "resample",
    batch_size: int = 64,
) -> tuple[np.ndarray, dict[str, np.ndarray]]:
    """Labels (n,) and, per run (key, rate, rescale), the logits (n, n_classes) of every clip of `clips`.

    `clips` yields (waveform at the model's training rate, label, path); each batch is converted once per rate
    (`prepare`), and that conversion serves the rate's runs with and without Δ rescaled.
    """
    logits: dict[str, list[np.ndarray]] = {key: [] for key, _, _ in runs}
    labels = []
    model.eval()
    for waveform, label, _ in DataLoader(clips, batch_size=batch_size, shuffle=False):
        labels.append(label.numpy())
        converted = {}
        for key, rate, rescale in runs:
            if rate not in converted:
                converted[rate] = prepare(waveform, meta["sample_rate"], rate, downsample)
            logits[key].append(predict_logits(model, meta, converted[rate], rate, rescale=rescale).cpu().numpy())
    n_classes = len(meta["classes"])
    stacked = {key: np.concatenate(v) if v else np.zeros((0, n_classes), np.float32) for key, v in logits.items()}
    return (np.concatenate(labels) if labels else np.zeros(0, dtype=int)), stacked
