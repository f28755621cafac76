"""The embedding head (``model_name=embed_head``): a small classifier on a pretrained embedder's vector
of each 3-s window (BirdNET v2.4 by default), trained in seconds.

Why: on a few hundred recordings a head on global birdsong embeddings beats a network trained from
scratch (Ghani et al. 2023; Perch's agile modelling; BirdNET-Analyzer's custom classifier), and it is
ready long before the CNN. It is multi-label like the CNN (a sigmoid per class, binary cross-entropy
with the same balanced class weights and label smoothing) and validated on the same split grouped by
recording, so its metrics and the CNN's compare. The training matrix is small (windows x 1024), so
each step is one full batch: AdamW with a cosine schedule, no data loader.

Its checkpoint is a hawk checkpoint like the CNN's, carrying the embedder it needs (name, options and
identity), so infer embeds each window the same way and can ensemble it with CNN checkpoints.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

from hawk.ckpt import save_checkpoint
from hawk.errors import HawkError

NAME = "embed_head"


class HeadError(HawkError, ValueError):
    pass


@dataclass(frozen=True)
class HeadSettings:
    enabled: bool = False  # with a CNN model_name: train a head beside it, and infer ensembles both
    hidden: int = 512  # 0: a linear head (logistic regression per class); > 0: one hidden ReLU layer
    dropout: float = 0.3  # on the embedding (and the hidden layer)
    steps: int = 300  # full-batch optimiser steps
    calibrate: bool = True  # Platt scaling on the validation rows, folded into the last layer
    refit: bool = True  # then train again on every recording: the checkpoint, with that calibration
    lr: float = 0.01
    weight_decay: float = 0.001
    verdict_weight: float = 3.0  # a person's verdict (a "no", a confirmed field clip) counts this many curated rows
    dropped_weight: float = 1.0  # a window curation by the model dropped, as a negative of its class (0: unused)


class EmbedHead(nn.Module):
    """Embedding (n, in_dim) -> class logits (n, num_classes)."""

    def __init__(self, num_classes: int, in_dim: int, hidden: int = 0, dropout: float = 0.0):
        super().__init__()
        layers: list[nn.Module] = [nn.Dropout(dropout)] if dropout else []
        if hidden:
            layers += [nn.Linear(in_dim, hidden), nn.ReLU()] + ([nn.Dropout(dropout)] if dropout else [])
        layers.append(nn.Linear(hidden or in_dim, num_classes))
        self.net = nn.Sequential(*layers)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.net(x)


@dataclass(frozen=True)
class Verdicts:
    """Rows of a training matrix that a person judged for their own class only: ``no`` (bool per row)
    says the row is not its class (hawk.negatives), ``own_only`` that it is, but says nothing of the
    others (a confirmed clip of the user's recordings, where other species call too); ``by_model``
    (None: none), that a no is the model's (a window curation dropped), not a person's. The loss sees
    only those rows' own class, ``verdict_weight`` times, or ``dropped_weight`` for the model's."""

    no: np.ndarray
    own_only: np.ndarray
    by_model: np.ndarray | None = None

    def model_rows(self) -> np.ndarray:
        return self.by_model if self.by_model is not None else np.zeros(len(self.no), bool)

    def apply(self, target: torch.Tensor, mask: torch.Tensor, labels: np.ndarray,
              weight: float, dropped_weight: float) -> tuple[torch.Tensor, torch.Tensor]:
        rows = np.flatnonzero(self.no | self.own_only)
        own = np.asarray(labels, np.int64)[rows]
        target, mask = target.clone(), mask.clone()
        target[torch.from_numpy(np.flatnonzero(self.no))] = 0.0
        mask[torch.from_numpy(rows)] = 0.0
        mask[torch.from_numpy(rows), torch.from_numpy(own)] = torch.from_numpy(
            np.where(self.model_rows()[rows], dropped_weight, weight).astype(np.float32))
        return target, mask


@dataclass
class HeadRun:
    """One fold's head: its per-step records (as the CNN's epochs) and validation scores."""

    model: EmbedHead
    epochs: list[dict[str, float]]
    seconds: float
    calibration: dict[str, float] | None = None  # Platt (a, b) folded into the last layer, if fitted


def train_head(x: np.ndarray, labels: np.ndarray, train_idx: np.ndarray, val_idx: np.ndarray, num_classes: int,
               weights: np.ndarray, settings: HeadSettings, label_smoothing: float = 0.125, seed: int = 0,
               records: int = 20, verdicts: Verdicts | None = None) -> HeadRun:
    """Train on rows ``train_idx`` of ``x`` (one class index per row in ``labels``; ``verdicts`` marks
    rows that say something about their own class only); ``records`` rows of metrics (loss,
    validation loss and AP) are kept, evenly spread over the steps."""
    from hawk.training.module import average_precisions

    torch.manual_seed(seed)
    start = time.perf_counter()
    xt = torch.from_numpy(np.ascontiguousarray(x, np.float32))
    target = torch.zeros(len(labels), num_classes)
    target[torch.arange(len(labels)), torch.from_numpy(np.asarray(labels, np.int64))] = 1.0
    mask = torch.ones(len(labels), num_classes)
    if verdicts is not None:
        target, mask = verdicts.apply(target, mask, labels, settings.verdict_weight, settings.dropped_weight)
    smooth = target * (1 - label_smoothing) + label_smoothing / num_classes
    w = torch.as_tensor(weights, dtype=torch.float32)
    tr, va = torch.from_numpy(np.asarray(train_idx, np.int64)), torch.from_numpy(np.asarray(val_idx, np.int64))
    model = EmbedHead(num_classes, x.shape[1], settings.hidden, settings.dropout)
    opt = torch.optim.AdamW(model.parameters(), lr=settings.lr, weight_decay=settings.weight_decay)
    sched = torch.optim.lr_scheduler.CosineAnnealingLR(opt, T_max=max(1, settings.steps))

    def loss_of(logits: torch.Tensor, rows: torch.Tensor) -> torch.Tensor:
        per = nn.functional.binary_cross_entropy_with_logits(logits, smooth[rows], reduction="none")
        known = mask[rows]
        return (per * known * w).sum() / known.sum()  # the mean over what is known

    every = max(1, settings.steps // max(1, records))
    epochs: list[dict[str, float]] = []
    for step in range(1, settings.steps + 1):
        model.train()
        loss = loss_of(model(xt[tr]), tr)
        opt.zero_grad()
        loss.backward()
        opt.step()
        lr = sched.get_last_lr()[0]
        sched.step()
        if step % every and step != settings.steps:
            continue
        row = {"epoch": step, "train_loss": float(loss.detach()), "lr": lr}
        if len(va):
            model.eval()
            with torch.no_grad():
                logits = model(xt[va])
            row["val_loss"] = float(loss_of(logits, va))
            row["val_macro_ap"], row["val_micro_ap"] = average_precisions(torch.sigmoid(logits).numpy(),
                                                                          target[va].numpy())
        epochs.append(row)
    model.eval()
    platt = calibrate(model, xt[va], target[va].numpy()) if settings.calibrate and len(va) else None
    return HeadRun(model, epochs, time.perf_counter() - start, platt)


@torch.no_grad()
def calibrate(model: EmbedHead, x: torch.Tensor, truth: np.ndarray) -> dict[str, float] | None:
    """Platt scaling fitted on held-out rows and folded into the last layer (its logits times a,
    plus b), so the checkpoint itself scores calibrated and every engine runs it unchanged. Why:
    label smoothing and class weights squeeze a head's sigmoid below 0.8 even on clear calls, and
    infer's default threshold would then label nothing. None (left as trained) when the rows hold
    one outcome only or the fit is not increasing."""
    from hawk.evaluate import fit_platt

    platt = fit_platt(torch.sigmoid(model(x)).numpy(), truth)
    if platt is None or platt["a"] <= 0:
        return None
    apply_platt(model, platt)
    return platt


@torch.no_grad()
def apply_platt(model: EmbedHead, platt: dict[str, float]) -> None:
    """Fold ``sigmoid(a * logit + b)`` into the last layer."""
    last = model.net[-1]
    last.weight.mul_(platt["a"])
    last.bias.mul_(platt["a"]).add_(platt["b"])


def head_options(model: EmbedHead) -> dict[str, Any]:
    """What :func:`hawk.models.create_model` needs to rebuild ``model`` (stored in the checkpoint)."""
    first = next(m for m in model.net if isinstance(m, nn.Linear))
    hidden = first.out_features if sum(isinstance(m, nn.Linear) for m in model.net) > 1 else 0
    dropout = next((m.p for m in model.net if isinstance(m, nn.Dropout)), 0.0)
    return {"in_dim": first.in_features, "hidden": hidden, "dropout": dropout}


def save_head(path: str | Path, run: HeadRun, classes: list[tuple[str, str]], specset_meta: dict[str, Any],
              extra: dict[str, Any]) -> Path:
    """A hawk checkpoint of the head, carrying the embedder that made its training vectors."""
    embedder = specset_meta.get("embedder")
    if not embedder:
        raise HeadError("the training set has no embeddings; rerun the pickle stage with the head enabled")
    return save_checkpoint(path, NAME, run.model, classes, specset_meta["spec_settings"], specset_meta["data"],
                           {**extra, "head": head_options(run.model), "embedder": embedder})

