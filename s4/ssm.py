"""The learnable SSMs behind an S4 layer: H state space models, their kernels and their recurrences.

`DPLRSSM` is S4 (A = Λ − P P*, HiPPO-LegS init, bilinear, kernel by Algorithm 1); `DiagSSM` is S4D
(A = Λ, ZOH or bilinear, kernel by Vandermonde products). Both keep one state per conjugate pair and
stay stable by construction: Re Λ = −exp(·) < 0, and Λ − P P* has a negative semi-definite Hermitian part.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import torch
from torch import Tensor, nn

from s4.fft import fft_conv
from s4.hippo import diag_init, nplr_legs_half
from s4.kernel import (
    DISCRETIZATIONS,
    diag_bar,
    diag_kernel,
    discretize_bilinear,
    dplr_kernel,
    naive_kernel,
    pair_expand,
    retruncate_C,
)  # fmt: skip
from s4.options import S4Options

DEFAULTS = S4Options()  # the SSMs' own defaults are the model's

_MEMO_SIZE = 8  # kernels and step parameters remembered per SSM: a few rates and lengths in the app
# Parameter names that take the SSM learning rate and no weight decay (`s4.model.param_groups`).
SSM_PARAMETERS = ("log_neg_real", "imag", "P", "B", "log_dt")


class _SSM(nn.Module):
    """Shared state: Λ, B (n_ssm copies tied across channels), C and Δ (one per channel)."""

    def __init__(
        self,
        channels: int,
        Lambda: Tensor,
        B: Tensor,
        n_ssm: int | None,
        dt_min: float,
        dt_max: float,
    ) -> None:
        super().__init__()
        n_ssm = n_ssm or channels
        if channels % n_ssm:
            raise ValueError(f"n_ssm={n_ssm} must divide the number of SSM channels {channels}")
        if not 0 < dt_min <= dt_max:
            raise ValueError(f"need 0 < dt_min <= dt_max, got dt_min={dt_min}, dt_max={dt_max}")
        self.channels, self.n_ssm, self.half_state = channels, n_ssm, Lambda.shape[-1]
        self.log_neg_real = nn.Parameter(torch.log(-Lambda.real).float().repeat(n_ssm, 1))
        self.imag = nn.Parameter(Lambda.imag.float().repeat(n_ssm, 1))
        self.B = nn.Parameter(torch.view_as_real(B.to(torch.complex64)).repeat(n_ssm, 1, 1))
        # C ~ complex normal with unit variance, as the reference initialises it.
        self.C = nn.Parameter(torch.randn(channels, self.half_state, 2) * math.sqrt(0.5))
        log_dt = torch.rand(channels) * (math.log(dt_max) - math.log(dt_min)) + math.log(dt_min)
        self.log_dt = nn.Parameter(log_dt)
        self._memo: dict[tuple, object] = {}

    def _per_channel(self, t: Tensor) -> Tensor:
        """(n_ssm, ...) → (channels, ...): copy i serves channels i·k … (i+1)·k − 1."""
        return t.repeat_interleave(self.channels // self.n_ssm, dim=0)

    def Lambda(self) -> Tensor:
        """(channels, N/2) complex, real part strictly negative."""
        return self._per_channel(torch.complex(-torch.exp(self.log_neg_real), self.imag))

    def dt(self, dt_scale: float = 1.0) -> Tensor:
        """Δ · dt_scale, (channels,)."""
        return torch.exp(self.log_dt) * dt_scale

    def initial_state(self, batch_size: int) -> Tensor:
        """Zero state, (batch_size, channels, N/2) complex."""
        return torch.zeros(batch_size, self.channels, self.half_state, dtype=torch.complex64, device=self.C.device)

    def _memoised(self, name: str, args: tuple, compute):
        """compute(*args) without autograd, remembered until a parameter changes (a few entries at most)."""
        # Parameters change in place during training: their version counters make the cache key honest.
        versions = tuple((p._version, p.data_ptr()) for p in self.parameters())
        key = (name, *args)
        if key not in self._memo or self._memo[key][0] != versions:
            if key not in self._memo and len(self._memo) >= _MEMO_SIZE:
                self._memo.pop(next(iter(self._memo)))
            with torch.no_grad():
                self._memo[key] = (versions, compute(*args))
        return self._memo[key][1]

    def kernel(self, L: int, dt_scale: float = 1.0) -> Tensor:
        """K (channels, L). Without autograd (evaluation, the app) the result is remembered per (L, dt_scale)."""
        if torch.is_grad_enabled():
            return self._kernel(L, dt_scale)
        return self._memoised("kernel", (int(L), float(dt_scale)), self._kernel)

    def _cached_step_params(self, dt_scale: float) -> tuple[Tensor, ...]:
        return self._memoised("step", (float(dt_scale),), self._step_params)

    def _kernel(self, L: int, dt_scale: float) -> Tensor:
        raise NotImplementedError

    def _step_params(self, dt_scale: float) -> tuple[Tensor, ...]:
        raise NotImplementedError

    def step(self, u: Tensor, state: Tensor, dt_scale: float = 1.0) -> tuple[Tensor, Tensor]:
        raise NotImplementedError

    def step_chunk(self, u: Tensor, state: Tensor, dt_scale: float = 1.0) -> tuple[Tensor, Tensor]:
        """M recurrent steps: u (batch, channels, M) → y (batch, channels, M), state. Same as M calls of `step`."""
        outputs = []
        for t in range(u.shape[-1]):
            y, state = self.step(u[..., t], state, dt_scale)
            outputs.append(y)
        return torch.stack(outputs, -1), state


class DPLRSSM(_SSM):
    """S4: A = Λ − P P* from HiPPO-LegS (Theorem 1), C stored in its truncated form C̃ = C(I − Ā^l_max).

    backend "dense" computes the kernel by the naive route (`dense_kernel`) instead of Algorithm 1: the
    baseline the benchmarks compare against; any other value names the Cauchy kernel's backend.
    """

    def __init__(
        self,
        channels: int,
        d_state: int = DEFAULTS.d_state,
        l_max: int = DEFAULTS.l_max,
        n_ssm: int | None = None,
        dt_min: float = DEFAULTS.dt_min,
        dt_max: float = DEFAULTS.dt_max,
        backend: str = DEFAULTS.backend,
    ) -> None:
        Lambda, P, B = nplr_legs_half(d_state)
        super().__init__(channels, Lambda, B, n_ssm, dt_min, dt_max)
        self.P = nn.Parameter(torch.view_as_real(P.to(torch.complex64)).repeat(self.n_ssm, 1, 1))
        self.l_max, self.backend = l_max, backend

    def horizon(self, dt_scale: float) -> int:
        """Samples that cover the continuous-time span of C̃ at this step size: l_max / dt_scale."""
        return max(1, round(self.l_max / dt_scale))

    def _kernel(self, L: int, dt_scale: float) -> Tensor:
        """K (channels, L). Computed at the horizon that C̃ was truncated for and cut to L, so that a rescaled
        Δ sees the same continuous-time window (the discrete length changes, the span l_max·Δ does not).
        """
        if self.backend == "dense":
            return self.dense_kernel(L, dt_scale)
        dt = self.dt(dt_scale)
        Lambda, P, B, C = self.system()
        horizon = self.horizon(dt_scale)
        if L > horizon:
            target = horizon * 2 ** math.ceil(math.log2(L / horizon))
            C = retruncate_C(Lambda, P, B, C, dt, horizon, target).to(C.dtype)
            horizon = target
        return dplr_kernel(Lambda, P, B, C, dt, horizon, backend=self.backend)[..., :L]

    def dense_kernel(self, L: int, dt_scale: float = 1.0) -> Tensor:
        """K (channels, L) the naive way: the untruncated C, the dense bilinear Ā, B̄ (eq. 3) of the full N-state
        system, and K_k = C Ā^k B̄ by Krylov doubling. O(N³ + N²·L) per channel: a reference, not a fast path.
        """
        dt = self.dt(dt_scale)
        Lambda, P, B, C_tilde = self.system()
        C = retruncate_C(Lambda, P, B, C_tilde, dt, self.horizon(dt_scale), None)
        A, B, C = pair_expand(Lambda, P, B, C)
        A_bar, B_bar = discretize_bilinear(A, B, dt)
        return naive_kernel(A_bar, B_bar, C, L)

    def system(self) -> tuple[Tensor, Tensor, Tensor, Tensor]:
        """(Λ, P, B, C̃), each (channels, N/2) complex: one state per conjugate pair, C̃ truncated at l_max."""
        P = self._per_channel(torch.view_as_complex(self.P))
        B = self._per_channel(torch.view_as_complex(self.B))
        return self.Lambda(), P, B, torch.view_as_complex(self.C)

    def _step_params(self, dt_scale: float) -> tuple[Tensor, ...]:
        dt = self.dt(dt_scale)
        Lambda, P, B, C_tilde = self.system()
        to64 = lambda t: t.to(torch.complex128)  # noqa: E731
        C = retruncate_C(to64(Lambda), to64(P), to64(B), to64(C_tilde), dt.double(), self.horizon(dt_scale), None)
        D = 1 / (2 / dt[:, None] - Lambda)
        PDP = 2 * (P.conj() * D * P).sum(-1).real
        return Lambda, P, B, C.to(C_tilde.dtype), D, dt, PDP

    def step(self, u: Tensor, state: Tensor, dt_scale: float = 1.0) -> tuple[Tensor, Tensor]:
        """One bilinear step, x ← (I − Δ/2·A)⁻¹((I + Δ/2·A) x + Δ B u), y = C x, in O(N) per channel.

        Both factors are diagonal plus rank one (Theorem 2); the inverse is applied with Woodbury.
        Sums over states count both members of each pair, so P* x = 2·Re Σ P̄_n x_n.
        u (batch, channels) real, state (batch, channels, N/2) → y (batch, channels), state.
        """
        Lambda, P, B, C, D, dt, PDP = self._cached_step_params(dt_scale)
        dt = dt[:, None]
        P_x = 2 * (P.conj() * state).sum(-1, keepdim=True).real
        forward = state + dt / 2 * (Lambda * state - P * P_x) + dt * B * u[..., None]
        DP_forward = D * forward
        P_D_forward = 2 * (P.conj() * DP_forward).sum(-1, keepdim=True).real
        state = 2 / dt * (DP_forward - D * P * P_D_forward / (1 + PDP[:, None]))
        return 2 * (C * state).sum(-1).real, state


class DiagSSM(_SSM):
    """S4D: A = Λ diagonal, initialised by S4D-Lin, S4D-Inv or S4D-LegS; ZOH or bilinear.

    `alias_cutoff` (a fraction of π, default off) drops every mode whose discrete frequency |Im λ|·Δ·dt_scale
    reaches alias_cutoff·π from the kernel and the recurrence: a mode above the Nyquist frequency of the rate
    it runs at would answer to an alias of a lower frequency, not to the band it was trained on.
    `max_frequency` (a fraction of π at dt_scale 1, default off; one for all channels or one per channel) clamps
    every mode's |Im λ|·Δ to it, in both views: a mode cannot learn its way out of the band it was given (and so
    past the cutoff at a lower rate).
    """

    def __init__(
        self,
        channels: int,
        d_state: int = DEFAULTS.d_state,
        init: str = DEFAULTS.init,
        discretization: str = DEFAULTS.discretization,
        n_ssm: int | None = None,
        dt_min: float = DEFAULTS.dt_min,
        dt_max: float = DEFAULTS.dt_max,
        backend: str = DEFAULTS.backend,
        alias_cutoff: float | None = None,
        max_frequency: float | Sequence[float] | None = None,
    ) -> None:
        Lambda, B = diag_init(d_state, init)
        super().__init__(channels, Lambda, B, n_ssm, dt_min, dt_max)
        if discretization not in DISCRETIZATIONS:
            raise ValueError(f"unknown discretization {discretization!r}; choose one of {', '.join(DISCRETIZATIONS)}")
        if alias_cutoff is not None and not 0 < alias_cutoff <= 1:
            raise ValueError(f"alias_cutoff is a fraction of the Nyquist frequency in (0, 1], got {alias_cutoff}")
        self.discretization, self.backend, self.alias_cutoff = discretization, backend, alias_cutoff
        if max_frequency is None:
            self.max_frequency = None
        else:
            limits = torch.as_tensor(max_frequency, dtype=torch.float32)
            if limits.dim() > 1 or limits.numel() not in (1, channels):
                raise ValueError(f"max_frequency: one value or one per channel ({channels}), got {max_frequency}")
            limits = limits.expand(channels).clone()
            if not ((limits > 0) & (limits <= 1)).all():
                raise ValueError(
                    f"max_frequency is a fraction of π in (0, 1] for each of {channels} channels, got {max_frequency}"
                )
            self.register_buffer("max_frequency", limits[:, None], persistent=False)

    def _system(self, dt_scale: float) -> tuple[Tensor, Tensor, Tensor]:
        Lambda, C = self.Lambda(), torch.view_as_complex(self.C)
        if self.max_frequency is not None:
            limit = self.max_frequency * math.pi / self.dt()[:, None]  # (channels, 1)
            Lambda = torch.complex(Lambda.real, torch.maximum(torch.minimum(Lambda.imag, limit), -limit))
        if self.alias_cutoff is not None:
            below_nyquist = Lambda.imag.abs() * self.dt(dt_scale)[:, None] < self.alias_cutoff * math.pi
            C = C * below_nyquist
        return Lambda, self._per_channel(torch.view_as_complex(self.B)), C

    def mode_frequencies(self) -> Tensor:
        """|Im λ|·Δ of every mode at dt_scale 1, in radians per step, after the max_frequency clamp, (channels, N/2)."""
        return self._system(1.0)[0].imag.abs() * self.dt()[:, None]

    def _kernel(self, L: int, dt_scale: float) -> Tensor:
        Lambda, B, C = self._system(dt_scale)
        return diag_kernel(Lambda, B, C, self.dt(dt_scale), L, self.discretization, backend=self.backend)

    def _step_params(self, dt_scale: float) -> tuple[Tensor, ...]:
        Lambda, B, C = self._system(dt_scale)
        dt = self.dt(dt_scale)
        A_bar, B_bar = diag_bar(Lambda, B, dt, self.discretization)
        log_A_bar = Lambda * dt[:, None] if self.discretization == "zoh" else torch.log(A_bar)
        return A_bar, B_bar, C, log_A_bar

    def step(self, u: Tensor, state: Tensor, dt_scale: float = 1.0) -> tuple[Tensor, Tensor]:
        """x ← Ā x + B̄ u, y = 2·Re(C x). u (batch, channels), state (batch, channels, N/2)."""
        A_bar, B_bar, C, _ = self._cached_step_params(dt_scale)
        state = A_bar * state + B_bar * u[..., None]
        return 2 * (C * state).sum(-1).real, state

    def step_chunk(self, u: Tensor, state: Tensor, dt_scale: float = 1.0) -> tuple[Tensor, Tensor]:
        """M recurrent steps at once, O(N) work per step and channel, identical to M calls of `step`:
            x_k = Ā^(k+1) x_0 + Σ_{j≤k} Ā^(k−j) B̄ u_j,   y_k = 2·Re(C x_k),
        i.e. the state's free response plus a causal convolution of the chunk with its kernel.
        u (batch, channels, M) → y (batch, channels, M), state (batch, channels, N/2).
        """
        _, B_bar, C, log_A_bar = self._cached_step_params(dt_scale)
        M = u.shape[-1]
        exponent = log_A_bar[..., None] * torch.arange(M + 1, device=u.device)
        # Ā^0 … Ā^M as e^Re · (cos Im + i sin Im): torch.exp on complex64 is not vectorised on the CPU, and it
        # took most of live mode's step time (one thread, 0.1 s chunks: 4.0x → 6.8x real time at 16 kHz).
        powers = torch.polar(torch.exp(exponent.real), exponent.imag)
        kernel = 2 * (C * B_bar)[..., None].mul(powers[..., :M]).sum(-2).real
        y = fft_conv(u, kernel) + 2 * (C[..., None] * powers[..., 1:] * state[..., None]).sum(-2).real
        driven = (powers[..., :M].flip(-1) * u[:, :, None, :].to(powers.dtype)).sum(-1)
        return y, powers[..., M] * state + B_bar * driven
