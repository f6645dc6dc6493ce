"""Training progress as plain log lines, for runs whose output goes to a file or a pipe (see training.common.progress).

Lines look like "epoch 3/30, step 212/2340, loss 1.8421, 0.52 it/s" and, after each validation,
"epoch 3/30 validation: val_acc 0.4100, val_loss 1.7012".
"""

from __future__ import annotations

import math
import sys
import time
from collections.abc import Callable, Mapping
from typing import Any, TextIO

import lightning as L
import torch

from training.common.progress import LOG_EVERY_S, Every, duration_text


def _number(value: Any) -> float | None:
    """A logged value (tensor, float, or a step output holding "loss") → float; None when there is none."""
    if isinstance(value, Mapping):
        value = value.get("loss")
    if isinstance(value, torch.Tensor) and value.numel() == 1:
        return float(value.detach())
    return float(value) if isinstance(value, (int, float)) else None


class LineProgressCallback(L.Callback):
    """Replaces the progress bar when stdout is not a terminal: one line on the first training step and then
    at most every `every` seconds (epoch, step/total, loss, steps per second), one line per validation, one at
    the end. Only the global-zero process writes, as the bar does.
    """

    def __init__(
        self, every: float = LOG_EVERY_S, stream: TextIO | None = None, clock: Callable[[], float] = time.monotonic
    ) -> None:
        self.stream, self.clock = stream, clock
        self.pace = Every(every, clock)
        self.since: tuple[float, int] | None = None  # (time, step) of the previous line: its rate is current

    def _write(self, trainer: L.Trainer, text: str) -> None:
        if trainer.is_global_zero:
            stream = self.stream or sys.stdout  # looked up late: tests and callers may swap sys.stdout
            stream.write(text + "\n")
            stream.flush()

    @staticmethod
    def _epoch(trainer: L.Trainer) -> str:
        last = trainer.max_epochs if trainer.max_epochs not in (None, -1) else "?"
        return f"epoch {trainer.current_epoch + 1}/{last}"

    def on_train_start(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        self.start = self.clock()
        self.since = (self.start, trainer.global_step)

    def on_train_batch_end(
        self, trainer: L.Trainer, pl_module: L.LightningModule, outputs: Any, batch: Any, batch_idx: int
    ) -> None:
        if not self.pace.due():
            return
        now, step = self.clock(), trainer.global_step
        total = trainer.estimated_stepping_batches
        line = f"{self._epoch(trainer)}, step {step}/{total if math.isfinite(total) else '?'}"
        loss = _number(outputs)
        if loss is not None:
            line += f", loss {loss:.4f}"
        if self.since is not None and now > self.since[0] and step > self.since[1]:
            line += f", {(step - self.since[1]) / (now - self.since[0]):.2f} it/s"
        self.since = (now, step)
        self._write(trainer, line)

    def on_validation_end(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        # on_validation_end, not on_validation_epoch_end: only here are the epoch's val_* in callback_metrics.
        if trainer.sanity_checking:
            return
        metrics = {k: _number(v) for k, v in trainer.callback_metrics.items() if k.startswith("val_")}
        shown = ", ".join(f"{k} {v:.4f}" for k, v in sorted(metrics.items()) if v is not None)
        self._write(trainer, f"{self._epoch(trainer)} validation: {shown or 'no metrics logged'}")

    def on_train_end(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        elapsed = duration_text(self.clock() - self.start)
        self._write(trainer, f"training done: {trainer.global_step} steps in {elapsed}")
