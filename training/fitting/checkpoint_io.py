"""Checkpoints saved by `training.common.atomic.atomic_write`: a temporary file in the target's own folder, then one
rename.

Lightning's default (fsspec transaction) stages the file in the system temp folder and *moves* it: across
filesystems that is a copy, and a kill during the copy leaves a truncated last.ckpt behind.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import torch
from lightning.pytorch.plugins.io import TorchCheckpointIO

from training.common.atomic import atomic_write


class AtomicCheckpointIO(TorchCheckpointIO):
    """TorchCheckpointIO whose save is all-or-nothing on a local filesystem."""

    def save_checkpoint(self, checkpoint: dict[str, Any], path: str | os.PathLike, storage_options: Any = None) -> None:
        path = Path(path)
        path.parent.mkdir(parents=True, exist_ok=True)
        atomic_write(path, lambda handle: torch.save(checkpoint, handle))
