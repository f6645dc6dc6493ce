"""Ensemble: classifiers of one architecture, trained apart (config `ensemble`: seeds seed, seed + 1, ...), whose
logits are averaged. The average can settle the clips on which the runs disagree, not the ones they all get wrong
(README, v9: on the real test speakers most errors were shared); it costs one run's time and one model's
inference per member.

    model = Ensemble([member_0, member_1])   # S4Classifier or M5 members, all with the same classes
    logits = model(waveform, dt_scale=2.0)   # (B, L) → (B, n_classes): the mean of the members' logits
    model = combine(models)                   # the one model itself, or their Ensemble

Everything the app and the evaluation ask of an S4 model (Δ rescaling, the recurrent view of causal members, a
`frontend`) is answered for the members together.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import Tensor, nn


class Ensemble(nn.Module):
    """Members (n ≥ 2 modules mapping a waveform (B, L) to logits (B, C)) → the mean of their logits (B, C)."""

    def __init__(self, members: Sequence[nn.Module]) -> None:
        super().__init__()
        if len(members) < 2:
            raise ValueError(f"an ensemble needs at least 2 members, got {len(members)}")
        if len({type(member) for member in members}) != 1:
            raise ValueError("ensemble members must all be the same kind of model")
        self.members = nn.ModuleList(members)

    def forward(self, waveform: Tensor, dt_scale: float = 1.0) -> Tensor:
        """waveform (B, L) → the members' mean logits (B, n_classes)."""
        return torch.stack([member(waveform, dt_scale) for member in self.members]).mean(0)

    @property
    def frontend(self) -> nn.Module | None:
        """The first member's filterbank (members share an architecture), None without one."""
        return getattr(self.members[0], "frontend", None)

    @property
    def causal(self) -> bool:
        """Whether every member has a recurrent (step) view."""
        return all(member.causal for member in self.members)

    @property
    def pooling(self) -> int:
        """Input samples per output step of the recurrent view (the same for every member)."""
        return self.members[0].pooling

    def rescaled_ssms(self) -> list[nn.Module]:
        """The SSMs whose Δ follows the input rate: every member's, member by member."""
        return [ssm for member in self.members for ssm in member.rescaled_ssms()]

    def step_sizes(self) -> Tensor:
        """Δ at the training rate of every channel of every member's rescaled SSMs, float64 (n,)."""
        return torch.cat([member.step_sizes() for member in self.members])

    def initial_state(self, batch_size: int) -> list:
        """One recurrent state per member (causal members only, as `S4Classifier.initial_state`)."""
        return [member.initial_state(batch_size) for member in self.members]

    def step_chunk(self, samples: Tensor, state: list, dt_scale: float = 1.0) -> tuple[Tensor, list]:
        """samples (B, M) → the members' features of the completed output steps side by side (B, M', n·H)."""
        outputs = [member.step_chunk(samples, s, dt_scale) for member, s in zip(self.members, state, strict=True)]
        return torch.cat([features for features, _ in outputs], dim=-1), [s for _, s in outputs]

    def head(self, pooled: Tensor) -> Tensor:
        """Time-pooled features side by side (B, n·H) → the members' mean logits (B, n_classes)."""
        parts = pooled.chunk(len(self.members), dim=-1)
        return torch.stack([member.head(part) for member, part in zip(self.members, parts, strict=True)]).mean(0)


def member_count(value: object) -> int:
    """A config's or an export's "ensemble" entry, checked: a whole number of members, 1 or more (ValueError)."""
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        raise ValueError(f"'ensemble' must be a number of members (1 or more), got {value!r}")
    return value


def combine(models: Sequence[nn.Module]) -> nn.Module:
    """One model → itself; several → their `Ensemble`."""
    return models[0] if len(models) == 1 else Ensemble(models)
