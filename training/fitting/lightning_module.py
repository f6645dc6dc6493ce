"""The LightningModule: one classifier (S4 or M5), cross-entropy (class-weighted with data.balance: weights),
accuracy, AdamW and its schedule."""

from __future__ import annotations

import math
from collections.abc import Sequence

import lightning as L
import torch
import torch.nn.functional as F
from torch import Tensor, nn
from torch.optim.swa_utils import AveragedModel, get_ema_multi_avg_fn
from torchmetrics.classification import MulticlassAccuracy, MulticlassConfusionMatrix

from s4 import param_groups
from training.data.augment import mixup
from training.fitting.balance import class_weights
from training.serving.models import build_model


def warmup_cosine(warmup_steps: int, total_steps: int):
    """LR multiplier per step: linear 0 → 1 over warmup_steps, then cosine 1 → 0 at total_steps."""

    def factor(step: int) -> float:
        if step < warmup_steps:
            return (step + 1) / warmup_steps
        progress = min(1.0, (step - warmup_steps) / max(1, total_steps - warmup_steps))
        return 0.5 * (1.0 + math.cos(math.pi * progress))

    return factor


# What the best checkpoint and the plateau schedule follow: balanced accuracy, so that no class pays for another's
# many clips (`on_validation_epoch_end`).
VALIDATION_METRIC = "val_balanced_acc"


class SpeechClassifier(L.LightningModule):
    """Wraps the model named by `config["model"]`; batches are (waveform (B, L), label (B,), paths).

    With `optim.ema_decay` set, an exponential moving average of the weights is kept beside them (one update per
    training batch, buffers included); validation and export use the average, which with few speakers
    generalises better than the last step's weights. It is a submodule, so checkpoints and resume carry it.
    With `optim.mixup_alpha` set, training batches are blended (`training.data.augment.mixup`); training accuracy is
    then against each clip's own label, the larger part of its mixture.
    With `data.balance: weights`, the training loss weighs each class by `training.fitting.balance.class_weights` of
    `class_counts` (the training clips per class); validation loss stays unweighted, comparable across recipes.
    """

    def __init__(self, config: dict, n_classes: int, class_counts: Sequence[int] | None = None) -> None:
        super().__init__()
        self.save_hyperparameters()
        self.config = config
        weighted = config["data"].get("balance") == "weights"
        if weighted and class_counts is None:
            raise ValueError("data.balance: weights needs the training clips per class (class_counts)")
        self.loss_weights = class_weights(class_counts) if weighted else None
        options = {k: v for k, v in config["model"].items() if k != "kind"}
        self.model = build_model(config["model"]["kind"], n_classes=n_classes, **options)
        self.train_acc = MulticlassAccuracy(n_classes, average="micro")
        self.val_acc = MulticlassAccuracy(n_classes, average="micro")
        self.val_confusion = MulticlassConfusionMatrix(n_classes)
        decay = config["optim"].get("ema_decay")
        self.ema = None
        if decay is not None:
            self.ema = AveragedModel(self.model, multi_avg_fn=get_ema_multi_avg_fn(decay), use_buffers=True)
            self.ema.requires_grad_(False)

    def inference_model(self) -> nn.Module:
        """The weights to validate and export: the moving average when there is one, else the trained ones."""
        return self.model if self.ema is None else self.ema.module

    def forward(self, waveform: Tensor, dt_scale: float = 1.0) -> Tensor:
        """waveform (B, L) → logits (B, n_classes), from the trained (not averaged) weights."""
        return self.model(waveform, dt_scale=dt_scale)

    def on_train_batch_end(self, outputs, batch, batch_idx: int) -> None:
        if self.ema is not None:
            self.ema.update_parameters(self.model)

    def training_step(self, batch: tuple, batch_idx: int) -> Tensor:
        waveform, label, _ = batch
        target, alpha = label, self.config["optim"].get("mixup_alpha")
        if alpha is not None:
            waveform, target = mixup(waveform, label, self.hparams.n_classes, alpha)
        logits = self(waveform)
        weight = None if self.loss_weights is None else self.loss_weights.to(logits.device)
        smoothing = self.config["optim"]["label_smoothing"]
        loss = F.cross_entropy(logits, target, weight=weight, label_smoothing=smoothing)
        self.train_acc(logits, label)
        self.log("train_loss", loss, on_step=True, on_epoch=True, prog_bar=True, batch_size=len(label))
        self.log("train_acc", self.train_acc, on_step=False, on_epoch=True, prog_bar=True, batch_size=len(label))
        return loss

    def validation_step(self, batch: tuple, batch_idx: int) -> None:
        waveform, label, _ = batch
        logits = self.inference_model()(waveform)
        self.val_acc(logits, label)
        loss = F.cross_entropy(logits, label)
        self.log("val_loss", loss, on_epoch=True, prog_bar=True, sync_dist=True, batch_size=len(label))
        self.log("val_acc", self.val_acc, on_epoch=True, prog_bar=True, batch_size=len(label))
        self.val_confusion.update(logits, label)

    def on_validation_epoch_end(self) -> None:
        """Log "val_balanced_acc": the mean over the classes with validation clips of each one's accuracy, the
        validation rule's figure (`training.evaluation.report.balanced_accuracy`); the best checkpoint is chosen by
        it."""
        confusion = self.val_confusion.compute()  # summed over DDP processes
        self.val_confusion.reset()
        support = confusion.sum(dim=1)
        present = support > 0
        recall = confusion.diagonal()[present].float() / support[present]
        self.log("val_balanced_acc", recall.mean() if present.any() else recall.new_zeros(()), prog_bar=True)

    def configure_optimizers(self):
        optim, schedule = self.config["optim"], self.config["scheduler"]
        # SSM parameters (Λ, P, B, Δ) at their own lr without weight decay; biases and norms without decay.
        groups = param_groups(self.model, optim["lr"], optim["weight_decay"], optim["ssm_lr"])
        optimizer = torch.optim.AdamW(groups)
        if schedule["name"] == "cosine":
            total = schedule["total_steps"] or int(self.trainer.estimated_stepping_batches)
            lr_lambda = warmup_cosine(int(schedule["warmup_steps"]), int(total))
            scheduler = torch.optim.lr_scheduler.LambdaLR(optimizer, lr_lambda)
            return {"optimizer": optimizer, "lr_scheduler": {"scheduler": scheduler, "interval": "step"}}
        if schedule["name"] == "plateau":
            scheduler = torch.optim.lr_scheduler.ReduceLROnPlateau(
                optimizer, mode="max", factor=schedule["factor"], patience=schedule["patience"]
            )
            return {"optimizer": optimizer, "lr_scheduler": {"scheduler": scheduler, "monitor": VALIDATION_METRIC}}
        return optimizer
