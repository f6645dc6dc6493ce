"""S4Classifier: raw waveform (B, L) → class logits, by a stack of residual S4 blocks and mean pooling."""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from s4.frontend import build_filterbank
from s4.layer import S4
from s4.options import S4Options
from s4.ssm import SSM_PARAMETERS


class _Norm(nn.Module):
    """LayerNorm over channels, or BatchNorm1d over channels; both take (B, L, H) or one step (B, H).
    `kind` ("batch" or "layer") comes from `S4Options`, which has checked it."""

    def __init__(self, d_model: int, kind: str) -> None:
        super().__init__()
        self.kind = kind
        self.norm = nn.BatchNorm1d(d_model) if kind == "batch" else nn.LayerNorm(d_model)

    def forward(self, x: Tensor) -> Tensor:
        if self.kind == "batch" and x.dim() == 3:
            return self.norm(x.transpose(1, 2)).transpose(1, 2)
        return self.norm(x)


class S4Block(nn.Module):
    """Pre-norm residual block: x + dropout(S4(norm(x))), then optional average pooling in time."""

    def __init__(self, options: S4Options, pool: int, l_max: int) -> None:
        super().__init__()
        self.norm = _Norm(options.d_model, options.norm)
        self.s4 = S4(options.d_model, options, dropout=options.dropout, l_max=l_max)
        self.dropout = nn.Dropout(options.dropout)
        self.pool = pool

    def forward(self, x: Tensor, dt_scale: float = 1.0) -> Tensor:
        """x (B, L, H) → (B, ⌈L / pool⌉, H)."""
        x = x + self.dropout(self.s4(self.norm(x), dt_scale))
        if self.pool > 1:
            x = F.avg_pool1d(x.transpose(1, 2), self.pool, self.pool, ceil_mode=True).transpose(1, 2)
        return x

    def initial_state(self, batch_size: int) -> list:
        """[the SSM's state, the steps of a pooling window that is not full yet (B, r, H), r < pool]."""
        pending = torch.zeros(batch_size, 0, self.s4.d_model, device=self.s4.D.device)
        return [self.s4.initial_state(batch_size), pending]

    def step_chunk(self, x: Tensor, state: list, dt_scale: float = 1.0) -> tuple[Tensor, list]:
        """The recurrent view of `forward` over a chunk, x (B, M, H) → (B, M', H): the pooled steps that the
        chunk completes; the rest waits in `state` for the next chunk."""
        y, ssm_state = self.s4.step_chunk(self.norm(x), state[0], dt_scale)
        x = x + y
        if self.pool == 1:
            return x, [ssm_state, state[1]]
        x = torch.cat([state[1], x], dim=1)
        complete = x.shape[1] // self.pool * self.pool
        return x[:, :complete].unflatten(1, (-1, self.pool)).mean(2), [ssm_state, x[:, complete:]]


class S4Classifier(nn.Module):
    """Linear(1 → H) → n × S4Block → norm → mean over time → Linear(H → n_classes).

    forward: waveform (B, L) → logits (B, n_classes). `dt_scale = train_rate / input_rate` classifies audio
    sampled at another rate without retraining. Options (`S4Options`) come as an object, as keywords
    (`S4Classifier(10, d_model=64, mode="diag")`) or both. `pool` (one factor per block, default none)
    averages neighbouring time steps after a block: the later blocks then run on shorter sequences.
    `frontend` (options of `s4.frontend.SSMFilterbank`) replaces Linear(1 → H) by an S4D filterbank whose
    log-envelope frames leave at a fixed rate in Hz, then Linear(channels → H): only the filterbank's Δ is
    rescaled, the blocks after it run at the same step at every input rate.
    """

    def __init__(self, n_classes: int, options: S4Options | None = None, **changes) -> None:
        super().__init__()
        self.options = o = S4Options.build(options, **changes)
        self.n_classes, self.d_model = n_classes, o.d_model
        self.frontend = build_filterbank(o.frontend) if o.frontend is not None else None
        self.encoder = nn.Linear(self.frontend.channels if self.frontend else 1, o.d_model)
        blocks, length = [], -(-o.l_max // self.frontend.hop()) if self.frontend else o.l_max
        for factor in o.pools:
            blocks.append(S4Block(o, factor, length))
            length = -(-length // factor)
        self.blocks = nn.ModuleList(blocks)
        self.norm = _Norm(o.d_model, o.norm)
        self.decoder = nn.Linear(o.d_model, n_classes)

    @property
    def causal(self) -> bool:
        """Whether the model has a recurrent (step) view: no filterbank front end and no bidirectional layer."""
        return self.frontend is None and not self.options.bidirectional

    @property
    def pooling(self) -> int:
        """Input samples per output step of the recurrent view: the product of the blocks' pooling factors."""
        return math.prod(self.options.pools)

    def rescaled_ssms(self) -> list[nn.Module]:
        """The SSMs whose Δ is multiplied by dt_scale: the filterbank's alone when there is one (the blocks after
        it run on frames of a fixed duration), else every block's."""
        return [self.frontend.ssm] if self.frontend is not None else [block.s4.ssm for block in self.blocks]

    def step_sizes(self) -> Tensor:
        """Δ at the training rate of every channel of the rescaled SSMs, float64 (n,), in their order."""
        return torch.cat([ssm.dt().detach().double().flatten() for ssm in self.rescaled_ssms()])

    def features(self, waveform: Tensor, dt_scale: float = 1.0) -> Tensor:
        """waveform (B, L) → per-step features (B, L', H) before pooling over time."""
        if waveform.dim() != 2:
            raise ValueError(f"S4Classifier expects a waveform batch (batch, samples), got {tuple(waveform.shape)}")
        if self.frontend is None:
            x = self.encoder(waveform.unsqueeze(-1))
        else:
            x, dt_scale = self.encoder(self.frontend(waveform, dt_scale)), 1.0  # frames come at a fixed rate
        for block in self.blocks:
            x = block(x, dt_scale)
        return self.norm(x)

    def forward(self, waveform: Tensor, dt_scale: float = 1.0) -> Tensor:
        """waveform (B, L) → logits (B, n_classes)."""
        return self.decoder(self.features(waveform, dt_scale).mean(1))

    def head(self, pooled: Tensor) -> Tensor:
        """Time-pooled features (B, H) → logits (B, n_classes); the streaming view pools its own window."""
        return self.decoder(pooled)

    def initial_state(self, batch_size: int) -> list:
        """Recurrent state for `step` / `step_chunk`: one `S4Block.initial_state` per block."""
        if self.frontend is not None:
            raise ValueError("the filterbank front end has no recurrent (step) view: run `forward` on a window")
        return [block.initial_state(batch_size) for block in self.blocks]

    def step_chunk(self, samples: Tensor, state: list, dt_scale: float = 1.0) -> tuple[Tensor, list]:
        """The recurrent view over a chunk of input, samples (B, M) → the normed features of the output steps
        it completes (B, M', H), M' ≈ M / `pooling`. Feeding a clip in chunks of any size and averaging all
        the features gives `forward`'s pooled features: streaming audio costs O(N) per sample and channel.
        """
        x, new_state = self.encoder(samples.unsqueeze(-1)), []
        for block, block_state in zip(self.blocks, state, strict=True):
            if x.shape[1] == 0:  # a pooling window is still filling: nothing reaches the later blocks yet
                return x, new_state + state[len(new_state) :]
            x, block_state = block.step_chunk(x, block_state, dt_scale)
            new_state.append(block_state)
        return self.norm(x), new_state

    def step(self, sample: Tensor, state: list, dt_scale: float = 1.0) -> tuple[Tensor | None, list]:
        """One input sample per clip, (B,) → the normed features of a new output step (B, H), or None while a
        pooling window is still filling. Collecting the features and averaging them gives `forward`'s pool.
        """
        features, state = self.step_chunk(sample[:, None], state, dt_scale)
        return (features[:, 0] if features.shape[1] else None), state


def param_groups(module: nn.Module, lr: float, weight_decay: float, ssm_lr: float = 1e-3) -> list[dict]:
    """Split `module`'s trainable parameters into SSM / no-decay / decay optimiser groups (empty ones dropped)."""
    ssm, no_decay, decay = [], [], []
    norm_types = (nn.LayerNorm, nn.BatchNorm1d, nn.GroupNorm)
    for module_name, sub in module.named_modules():
        for name, parameter in sub.named_parameters(recurse=False):
            if not parameter.requires_grad:
                continue
            if name in SSM_PARAMETERS and module_name.endswith("ssm"):
                ssm.append(parameter)
            elif name in ("bias", "D") or isinstance(sub, norm_types):
                no_decay.append(parameter)
            else:
                decay.append(parameter)
    groups = [
        {"params": decay, "lr": lr, "weight_decay": weight_decay},
        {"params": no_decay, "lr": lr, "weight_decay": 0.0},
        {"params": ssm, "lr": ssm_lr, "weight_decay": 0.0},
    ]
    return [group for group in groups if group["params"]]
