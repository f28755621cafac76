"""The Lightning module: a registry model trained with HawkEars' recipe.

Multi-label binary cross-entropy with per-class weights (balanced, to the power 0.5, so rare classes
count more without dominating) and label smoothing (targets y(1-e) + e/K), AdamP (timm), a cosine
learning-rate schedule stepped every batch. Validation: loss and macro/micro average precision.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from contextlib import AbstractContextManager, nullcontext
from typing import Any

import lightning as L
import numpy as np
import torch
from sklearn.metrics import average_precision_score
from timm.optim import create_optimizer_v2
from torch import nn


def class_weights(labels: np.ndarray, num_classes: int, power: float = 0.5) -> np.ndarray:
    """sklearn-style balanced weights n / (K * count), raised to ``power``; absent classes get 1."""
    counts = np.bincount(labels, minlength=num_classes).astype(np.float64)
    w = np.ones(num_classes)
    present = counts > 0
    w[present] = (len(labels) / (num_classes * counts[present])) ** power
    return w.astype(np.float32)


def average_precisions(scores: np.ndarray, targets: np.ndarray) -> tuple[float, float]:
    """(macro, micro) average precision over the classes that have positives."""
    has = targets.sum(axis=0) > 0
    if not has.any():
        return float("nan"), float("nan")
    macro = float(average_precision_score(targets[:, has], scores[:, has], average="macro"))
    micro = float(average_precision_score(targets[:, has].ravel(), scores[:, has].ravel()))
    return macro, micro


@torch.no_grad()
def recalibrate_bn(model: nn.Module, loader: Any, batches: int,
                   precision: Callable[[], AbstractContextManager] = nullcontext) -> None:
    """Re-estimate batch-norm statistics as a plain average over un-augmented training batches.

    BN keeps an exponential average with momentum 0.1 that starts from variance 1; after only a
    few dozen steps (a small class set) it still remembers that start, and eval-mode predictions
    are poor. A fresh average over up to ``batches`` batches fixes that, and changes little on long
    runs. Averaged weights (SWA) need it too: the average of BN statistics is not the statistics
    of the averaged weights. ``precision``: the training's forward context (its autocast), so the pass
    costs what a forward step costs in training (BF16 halves it on CPU) and sees the activations
    training saw.
    """
    bns = [m for m in model.modules() if isinstance(m, nn.modules.batchnorm._BatchNorm)]
    if not bns or batches <= 0:
        return
    was_training = model.training
    momenta = [m.momentum for m in bns]
    for m in bns:
        m.reset_running_stats()
        m.momentum = None  # cumulative average
    model.train()
    device = next(model.parameters()).device
    with precision():
        for i, (x, _) in enumerate(loader):
            if i >= batches:
                break
            model(x.to(device).contiguous(memory_format=torch.channels_last))
    for m, mom in zip(bns, momenta):
        m.momentum = mom
    model.train(was_training)


class Classifier(L.LightningModule):
    def __init__(self, model: nn.Module, weights: np.ndarray, lr: float = 0.0025, weight_decay: float = 0.0,
                 label_smoothing: float = 0.125, optimizer: str = "adamp", recalibrate: Any = None,
                 recalibrate_batches: int = 0):
        super().__init__()
        self.model = model.to(memory_format=torch.channels_last)  # ~2x faster convolutions on CPU
        self.register_buffer("weights", torch.as_tensor(weights, dtype=torch.float32))
        self.lr, self.weight_decay, self.label_smoothing, self.optimizer_name = lr, weight_decay, label_smoothing, optimizer
        self._val: list[tuple[torch.Tensor, torch.Tensor]] = []
        self.recal_loader, self.recal_batches = recalibrate, recalibrate_batches
        self._last_end: float | None = None
        self._wait = 0.0
        self._step = 0.0

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.model(x.contiguous(memory_format=torch.channels_last))

    def loss(self, logits: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        k = target.shape[1]
        smooth = target * (1 - self.label_smoothing) + self.label_smoothing / k
        per = nn.functional.binary_cross_entropy_with_logits(logits.float(), smooth, reduction="none")
        return (per * self.weights).mean()

    def recalibrate_bn(self) -> None:
        """Batch-norm statistics re-estimated (see :func:`recalibrate_bn`) in the trainer's precision. The
        trainer asks for it once for each model it checkpoints, since a pass over up to 20 batches costs
        a third of an epoch of a small set; other epochs validate with BN's running averages."""
        if self.recal_loader is None or self.recal_batches <= 0:
            return
        recalibrate_bn(self, self.recal_loader, self.recal_batches, self.trainer.precision_plugin.forward_context)

    # --- time spent waiting for data: the gap between one step's end and the next step's start ---
    def on_train_epoch_start(self) -> None:
        self._last_end, self._wait, self._step = None, 0.0, 0.0

    def on_train_batch_start(self, batch: Any, batch_idx: int) -> None:
        now = time.perf_counter()
        if self._last_end is not None:
            self._wait += now - self._last_end
        self._batch_start = now

    def on_train_batch_end(self, outputs: Any, batch: Any, batch_idx: int) -> None:
        self._last_end = time.perf_counter()
        self._step += self._last_end - self._batch_start

    @property
    def step_seconds(self) -> float:
        """Seconds this epoch spent in training steps (forward, backward, optimiser)."""
        return self._step

    def data_wait_share(self) -> float:
        """Share of this epoch's training time spent waiting for the next batch (goal: under 10%)."""
        total = self._wait + self._step
        return self._wait / total if total > 0 else 0.0

    def training_step(self, batch: tuple[torch.Tensor, torch.Tensor], batch_idx: int) -> torch.Tensor:
        x, y = batch
        loss = self.loss(self(x), y)
        self.log("train_loss", loss, on_step=False, on_epoch=True, prog_bar=True, batch_size=len(x), sync_dist=True)
        self.log("lr", self.trainer.optimizers[0].param_groups[0]["lr"], on_step=False, on_epoch=True)
        return loss

    def validation_step(self, batch: tuple[torch.Tensor, torch.Tensor], batch_idx: int) -> None:
        x, y = batch
        logits = self(x)
        self.log("val_loss", self.loss(logits, y), on_step=False, on_epoch=True, prog_bar=True, batch_size=len(x),
                 sync_dist=True)
        self._val.append((torch.sigmoid(logits.float()).detach(), y.detach()))

    def on_validation_epoch_end(self) -> None:
        if not self._val:
            return
        scores = torch.cat([s for s, _ in self._val])
        targets = torch.cat([t for _, t in self._val])
        self._val.clear()
        if self.trainer.world_size > 1:
            scores = self.all_gather(scores).flatten(0, 1)
            targets = self.all_gather(targets).flatten(0, 1)
        macro, micro = average_precisions(scores.cpu().numpy(), targets.cpu().numpy())
        self.log("val_macro_ap", macro, prog_bar=True, rank_zero_only=True)
        self.log("val_micro_ap", micro, rank_zero_only=True)

    def configure_optimizers(self) -> dict[str, Any]:
        params = [p for p in self.model.parameters() if p.requires_grad]
        opt = create_optimizer_v2(params, self.optimizer_name, lr=self.lr, weight_decay=self.weight_decay)
        steps = max(1, int(self.trainer.estimated_stepping_batches))
        sched = torch.optim.lr_scheduler.CosineAnnealingLR(opt, T_max=steps)
        return {"optimizer": opt, "lr_scheduler": {"scheduler": sched, "interval": "step"}}
