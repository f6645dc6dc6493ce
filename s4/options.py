"""`S4Options`: every option of an S4 model in one place, in the spirit of nanoGPT's `GPTConfig`.

The classifier reads all of them, each `S4` layer the ones it passes to its SSM, and `training.fitting.config` checks a
config's `model` section against these fields, so a default (dt_min = 1e-3, …) is written once, here.
"""

from __future__ import annotations

from dataclasses import dataclass, fields, replace

MODES = ("dplr", "diag")
NORMS = ("batch", "layer")


@dataclass
class S4Options:
    """Options of an `S4Classifier`; those from `d_state` to `backend` also shape each `S4` layer and its SSM."""

    d_model: int = 128  # H, the width of every block
    n_layers: int = 6
    pool: tuple[int, ...] | None = None  # per block, average this many steps after it; None = no pooling
    norm: str = "batch"  # "batch" or "layer", pre-norm in each block and after the last
    dropout: float = 0.1
    l_max: int = 16000  # longest input the DPLR kernel is truncated for (re-truncated on demand)
    frontend: dict | None = None  # options of `s4.frontend.SSMFilterbank`; None = Linear(1 → H) on samples
    d_state: int = 64  # N, the state size of each SSM
    mode: str = "dplr"  # "dplr" (S4: HiPPO-LegS, Algorithm 1) or "diag" (S4D)
    bidirectional: bool = False
    glu: bool = False  # GLU after the output mixing (doubles its width)
    n_ssm: int | None = None  # copies of (Λ, P, B) shared by the channels; None = one per channel
    dt_min: float = 1e-3  # Δ is drawn log-uniformly from [dt_min, dt_max] per channel
    dt_max: float = 1e-1
    init: str = "lin"  # S4D initialisation: "lin", "inv" or "legs"
    discretization: str = "zoh"  # S4D: "zoh" or "bilinear" (S4 is bilinear)
    backend: str = "auto"  # Cauchy kernel: "auto", "triton", "keops" or "torch"

    def __post_init__(self) -> None:
        if self.mode not in MODES:
            raise ValueError(f"unknown S4 mode {self.mode!r}; choose 'dplr' (S4) or 'diag' (S4D)")
        if self.norm not in NORMS:
            raise ValueError(f"unknown norm {self.norm!r}; choose one of {', '.join(NORMS)}")
        if not 0 < self.dt_min <= self.dt_max:
            raise ValueError(f"need 0 < dt_min <= dt_max, got dt_min={self.dt_min}, dt_max={self.dt_max}")
        if self.pool is not None:
            if len(self.pool) != self.n_layers or any(int(p) < 1 or int(p) != p for p in self.pool):
                raise ValueError(f"pool needs {self.n_layers} positive factors (one per layer), got {list(self.pool)}")
            self.pool = tuple(int(p) for p in self.pool)

    @property
    def pools(self) -> tuple[int, ...]:
        """The pooling factor after each block (1 = none)."""
        return self.pool if self.pool is not None else (1,) * self.n_layers

    @classmethod
    def names(cls) -> list[str]:
        """Every option's name, in declaration order."""
        return [f.name for f in fields(cls)]

    @classmethod
    def build(cls, options: S4Options | None = None, **changes) -> S4Options:
        """`options` (default: all defaults) with `changes` applied; an unknown name is a ValueError naming it."""
        unknown = sorted(set(changes) - set(cls.names()))
        if unknown:
            raise ValueError(f"unknown S4 option(s) {', '.join(unknown)}; known: {', '.join(cls.names())}")
        return replace(options or cls(), **changes)
