"""The S4 layer: H independent SSMs applied by FFT convolution, a D skip, GELU and an output mixing."""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from s4.fft import fft_conv_channels_last, two_sided
from s4.options import S4Options
from s4.ssm import DPLRSSM, DiagSSM


class S4(nn.Module):
    """H independent SSMs (S4 or S4D) over a sequence, then GELU and a linear mixing of the channels.

    forward: x (B, L, H) → (B, L, H). Causal unless `bidirectional`, which adds a second SSM run backwards.
    `dt_scale` multiplies every Δ: a signal sampled at half the training rate uses dt_scale = 2.
    The SSM's shape comes from `options` (`S4Options`: d_state, mode, bidirectional, glu, n_ssm, dt range, init,
    discretization, backend, l_max), changed by keyword: `S4(64, mode="diag", bidirectional=True)`.
    """

    def __init__(self, d_model: int, options: S4Options | None = None, *, dropout: float = 0.0, **changes) -> None:
        super().__init__()
        o = S4Options.build(options, **changes)
        self.d_model, self.d_state, self.mode, self.bidirectional = d_model, o.d_state, o.mode, o.bidirectional
        channels = 2 * d_model if o.bidirectional else d_model
        n_ssm = o.n_ssm * 2 if o.n_ssm is not None and o.bidirectional else o.n_ssm  # a copy per direction
        if o.mode == "dplr":
            self.ssm = DPLRSSM(channels, o.d_state, o.l_max, n_ssm, o.dt_min, o.dt_max, o.backend)
        else:
            self.ssm = DiagSSM(channels, o.d_state, o.init, o.discretization, n_ssm, o.dt_min, o.dt_max, o.backend)
        self.D = nn.Parameter(torch.randn(d_model))
        self.dropout = nn.Dropout(dropout)
        self.glu = o.glu
        self.output_linear = nn.Linear(d_model, 2 * d_model if o.glu else d_model)

    def kernel(self, L: int, dt_scale: float = 1.0) -> Tensor:
        """The SSM kernels, (H, L) for a causal layer; (2, H, L) forward and backward for a bidirectional one."""
        k = self.ssm.kernel(L, dt_scale)
        return k.view(2, self.d_model, L) if self.bidirectional else k

    def forward(self, x: Tensor, dt_scale: float = 1.0) -> Tensor:
        """x (B, L, H) → (B, L, H)."""
        if x.dim() != 3 or x.shape[-1] != self.d_model:
            raise ValueError(f"S4 expects (batch, length, {self.d_model}), got {tuple(x.shape)}")
        with torch.autocast(x.device.type, enabled=False):
            # MKL/cuFFT have no bf16 FFT and the kernel needs fp32 accuracy: the SSM runs in float32.
            u = x.float()
            k = self.kernel(u.shape[1], dt_scale)
            k = two_sided(k[0], k[1]) if self.bidirectional else k  # both directions in one convolution
            # The D skip is the lag-0 tap of the same convolution: no separate (B, L, H) product and sum.
            k = torch.cat([k[:, :1] + self.D[:, None], k[:, 1:]], dim=-1)
            y = fft_conv_channels_last(u, k)
        return self._mix(y.to(x.dtype))

    def _mix(self, y: Tensor) -> Tensor:
        y = self.output_linear(self.dropout(F.gelu(y)))
        return F.glu(y, dim=-1) if self.glu else y

    def initial_state(self, batch_size: int) -> Tensor:
        """Zero recurrent state, (batch_size, H, N/2) complex."""
        self._require_causal()
        return self.ssm.initial_state(batch_size)

    def step(self, x_t: Tensor, state: Tensor, dt_scale: float = 1.0) -> tuple[Tensor, Tensor]:
        """The recurrent view: one time step in O(N) per channel. x_t (B, H), state → y_t (B, H), state."""
        self._require_causal()
        y, state = self.ssm.step(x_t.float(), state, dt_scale)
        return self._mix((y + self.D * x_t.float()).to(x_t.dtype)), state

    def step_chunk(self, x: Tensor, state: Tensor, dt_scale: float = 1.0) -> tuple[Tensor, Tensor]:
        """The recurrent view over a chunk: x (B, M, H), state → (B, M, H), state; equal to M calls of `step`."""
        self._require_causal()
        u = x.float().transpose(1, 2)
        y, state = self.ssm.step_chunk(u, state, dt_scale)
        return self._mix((y + self.D[:, None] * u).transpose(1, 2).to(x.dtype)), state

    def _require_causal(self) -> None:
        if self.bidirectional:
            raise ValueError("a bidirectional S4 layer sees the future and has no recurrent (step) view")
