"""M5: the raw-waveform 1-D CNN baseline (Dai et al., 2017) that S4 is compared with at 0.5x sampling rate."""

from __future__ import annotations

from torch import Tensor, nn


def _conv_block(c_in: int, c_out: int, kernel: int, stride: int, pool: int) -> nn.Sequential:
    return nn.Sequential(nn.Conv1d(c_in, c_out, kernel, stride), nn.BatchNorm1d(c_out), nn.ReLU(), nn.MaxPool1d(pool))


class M5(nn.Module):
    """Conv(80, stride) → 3 × Conv(3), each with BatchNorm, ReLU and max-pool 4 → mean over time → Linear.

    forward: waveform (B, L) → logits (B, n_classes). With n_channels=20 (cnn-small) it has 10,770 parameters,
    about the size of the `cpu-small` S4 model (11,466). Its filters are fixed lengths in *samples*: a clip at half
    the rate puts every sound at twice the frequency the filters were trained on, and nothing can compensate.
    Inputs need at least 6,848 samples (four stages of max-pool 4): 0.43 s at 16 kHz, 0.86 s at 8 kHz.
    """

    def __init__(self, n_classes: int, n_channels: int = 32, stride: int = 16, first_kernel: int = 80) -> None:
        super().__init__()
        self.n_classes = n_classes
        self.features = nn.Sequential(
            _conv_block(1, n_channels, first_kernel, stride, 4),
            _conv_block(n_channels, n_channels, 3, 1, 4),
            _conv_block(n_channels, 2 * n_channels, 3, 1, 4),
            _conv_block(2 * n_channels, 2 * n_channels, 3, 1, 4),
        )
        self.decoder = nn.Linear(2 * n_channels, n_classes)

    def forward(self, waveform: Tensor, dt_scale: float = 1.0) -> Tensor:
        """waveform (B, L) → logits (B, n_classes). `dt_scale` is accepted and ignored: a CNN has no step size
        to rescale — that is the point of the comparison.
        """
        if waveform.dim() != 2:
            raise ValueError(f"M5 expects a waveform batch (batch, samples), got {tuple(waveform.shape)}")
        return self.decoder(self.features(waveform.unsqueeze(1)).mean(-1))
