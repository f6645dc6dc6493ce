"""Matplotlib figures for the app: waveform (with the words heard), spectrogram, SSM kernels across rates.

Figures are built with `matplotlib.figure.Figure`, not pyplot: no global figure registry to leak from in a
long-running server, and the Agg canvas needs no display.
"""

from __future__ import annotations

from collections.abc import Sequence

import matplotlib

matplotlib.use("Agg")

import numpy as np  # noqa: E402
from matplotlib.figure import Figure  # noqa: E402
from torch import Tensor  # noqa: E402

SIZE = (7.0, 2.6)
MAX_POINTS = 20_000  # a minute at 48 kHz would be 2.9 M points: draw the min/max envelope instead
LABEL_FONT = 8


def waveform_figure(wave: Tensor, rate: int, marks: Sequence[tuple[float, float, str]] = ()) -> Figure:
    """Amplitude vs seconds; each mark (start s, end s, word) as a shaded band with the word above the waveform,
    crowded words on more rows (`label_rows`) so that no label covers another."""
    fig = Figure(figsize=SIZE, layout="constrained")
    ax = fig.add_subplot()
    x = wave.numpy()
    t = np.arange(x.shape[0]) / rate
    if x.shape[0] > MAX_POINTS:
        step = -(-x.shape[0] // (MAX_POINTS // 2))
        usable = x[: x.shape[0] // step * step].reshape(-1, step)
        ax.fill_between(t[: usable.shape[0] * step : step], usable.min(1), usable.max(1), lw=0, color="C0")
    else:
        ax.plot(t, x, lw=0.6, color="C0")
    span = max(t[-1], 1e-3)
    seconds_per_inch = span / (SIZE[0] * 0.8)  # the axes take about 80% of the figure's width
    centres = [(start + end) / 2 for start, end, _ in marks]
    widths = [LABEL_FONT * 0.6 / 72 * (len(word) + 2) * seconds_per_inch for _, _, word in marks]
    rows = label_rows(centres, widths)
    peak, n_rows = max(float(np.abs(x).max()), 1e-6), max(rows, default=-1) + 1
    row_height = 0.25 * peak  # rows of labels stacked above the waveform, the first row nearest to it
    for i, (start, end, word) in enumerate(marks):
        ax.axvspan(start, end, color=f"C{1 + i % 2}", alpha=0.15)
        y = peak * 1.05 + (rows[i] + 0.5) * row_height
        ax.text(centres[i], y, word, ha="center", va="center", fontsize=LABEL_FONT)
    ax.set(xlabel="time (s)", ylabel="amplitude", xlim=(0, span), title=f"waveform ({rate} Hz)")
    ax.set_ylim(-peak * 1.05, peak * 1.05 + n_rows * row_height)
    return fig


def label_rows(centres: Sequence[float], widths: Sequence[float]) -> list[int]:
    """A row (0, 1, ...) for each label centred at `centres` with `widths` (one unit), such that labels in one row
    do not overlap: in time order, each takes the first row where it clears the last label, or a new row."""
    ends: list[float] = []
    rows = [0] * len(centres)
    for i in sorted(range(len(centres)), key=lambda i: centres[i]):
        left = centres[i] - widths[i] / 2
        free = [row for row, end in enumerate(ends) if end <= left]
        rows[i] = free[0] if free else len(ends)
        if not free:
            ends.append(0.0)
        ends[rows[i]] = centres[i] + widths[i] / 2
    return rows


def spectrogram_figure(wave: Tensor, rate: int) -> Figure:
    """Power spectrogram in dB (25 ms Hann frames, 10 ms hop), up to the clip's Nyquist frequency."""
    fig = Figure(figsize=SIZE, layout="constrained")
    ax = fig.add_subplot()
    frame = max(16, int(0.025 * rate))
    hop = max(1, int(0.010 * rate))
    x = wave.numpy().astype(np.float64)
    if x.shape[0] < frame:
        x = np.pad(x, (0, frame - x.shape[0]))
    frames = np.lib.stride_tricks.sliding_window_view(x, frame)[::hop] * np.hanning(frame)
    power_db = 10 * np.log10(np.abs(np.fft.rfft(frames, axis=-1)) ** 2 + 1e-12)
    extent = (0, x.shape[0] / rate, 0, rate / 2000)
    image = ax.imshow(
        power_db.T, origin="lower", aspect="auto", extent=extent, cmap="magma",
        vmin=power_db.max() - 80, vmax=power_db.max(),
    )  # fmt: skip
    fig.colorbar(image, ax=ax, label="dB")
    ax.set(xlabel="time (s)", ylabel="frequency (kHz)", title="spectrogram")
    return fig


def kernel_figure(
    k_train: np.ndarray,
    train_rate: int,
    k_rate: np.ndarray,
    rate: int,
    channels: Sequence[int],
    span_ms: float,
    dt_scale: float,
) -> Figure:
    """Kernels (C, L) at the training rate (lines) and at `rate` (dots), vs time in ms, one panel per channel.

    A kernel at dt_scale s integrates s times more input time per sample, so it is divided by s to share
    the axis with the training-rate kernel: both then sample the same continuous impulse response.
    """
    fig = Figure(figsize=(7.0, 1.6 * len(channels) + 0.6), layout="constrained")
    axes = fig.subplots(len(channels), 1, sharex=True, squeeze=False)[:, 0]
    n_train = int(span_ms * train_rate / 1000) + 1
    n_rate = int(span_ms * rate / 1000) + 1
    for ax, row, channel in zip(axes, range(len(channels)), channels, strict=True):
        ax.plot(1000 * np.arange(n_train) / train_rate, k_train[row, :n_train], lw=1, label=f"{train_rate} Hz")
        t_rate = 1000 * np.arange(min(n_rate, k_rate.shape[1])) / rate
        ax.plot(t_rate, k_rate[row, : t_rate.shape[0]] / dt_scale, "o", ms=2.5, alpha=0.7, label=f"{rate} Hz")
        ax.set_ylabel(f"ch {channel}", fontsize=8)
    axes[0].legend(fontsize=8, loc="upper right")
    axes[0].set_title(f"first-layer SSM kernels: {rate} Hz with Δ·{dt_scale:.3g} (÷{dt_scale:.3g}) vs {train_rate} Hz")
    axes[-1].set_xlabel("time (ms)")
    return fig
