"""Splits by recording (never by spectrogram) and the training/validation datasets."""

from __future__ import annotations

from collections import defaultdict

import numpy as np
import torch
from torch.utils.data import Dataset

from hawk.augment import Augmenter
from hawk.specset import SpecSet


def _group_members(groups: list[str]) -> dict[str, list[int]]:
    members: dict[str, list[int]] = defaultdict(list)
    for i, g in enumerate(groups):
        members[g].append(i)
    return members


def make_splits(groups: list[str], labels: np.ndarray, val_portion: float = 0.0, num_folds: int = 1,
                seed: int = 0) -> list[tuple[np.ndarray, np.ndarray]]:
    """(train indices, validation indices) per fold. Whole groups (a recording, or a set of duplicate
    recordings) go to one side, so overlapping segments of a recording never sit on both.

    ``num_folds`` > 1: k-fold cross-validation, groups dealt to folds largest first, each class spread
    over the folds. Otherwise one split holding out about ``val_portion`` of each class (0: no validation).
    """
    members = _group_members(groups)
    names = sorted(members)
    rng = np.random.default_rng(seed)
    rng.shuffle(names)
    n = len(labels)
    if num_folds > 1:
        if len(names) < num_folds:
            raise ValueError(f"{num_folds}-fold cross-validation needs at least {num_folds} recordings; "
                             f"the training set has {len(names)}")
        k_classes = int(labels.max()) + 1 if n else 0
        load = np.zeros((num_folds, k_classes))
        fold_of: dict[str, int] = {}
        for g in sorted(names, key=lambda g: -len(members[g])):  # stable: ties keep the shuffled order
            counts = np.bincount(labels[members[g]], minlength=k_classes)
            f = int(np.argmin(load @ (counts > 0) + load.sum(axis=1) * 1e-6))
            load[f] += counts
            fold_of[g] = f
        folds = np.array([fold_of[g] for g in groups])
        return [(np.flatnonzero(folds != f), np.flatnonzero(folds == f)) for f in range(num_folds)]
    if val_portion <= 0:
        return [(np.arange(n), np.zeros(0, np.int64))]
    target = np.bincount(labels) * val_portion
    have = np.zeros_like(target)
    val: list[int] = []
    for g in names:
        idx = members[g]
        counts = np.bincount(labels[idx], minlength=len(target))
        if np.all(have[counts > 0] < target[counts > 0]):
            val += idx
            have += counts
    val_idx = np.array(sorted(val), np.int64)
    return [(np.setdiff1d(np.arange(n), val_idx), val_idx)]


class SpecDataset(Dataset):
    """Spectrograms of ``indices`` as (1, height, width) float tensors with multi-hot targets (or the
    rows of ``targets``, soft ones from distillation); augmented when an ``augmenter`` is given
    (training only)."""

    def __init__(self, specset: SpecSet, indices: np.ndarray, augmenter: Augmenter | None = None, seed: int = 0,
                 targets: np.ndarray | None = None):
        self.specset = specset
        self.targets = targets
        self.indices = np.asarray(indices, np.int64)
        self.augmenter = augmenter
        self.num_classes = len(specset.class_codes)
        self.seed = seed
        self.epoch = 0

    def __len__(self) -> int:
        return len(self.indices)

    def fetch(self, i: int) -> np.ndarray:
        return self.specset.read(i).astype(np.float32) / 255.0

    def __getitem__(self, k: int) -> tuple[torch.Tensor, torch.Tensor]:
        i = int(self.indices[k])
        spec = self.fetch(i)
        cls = int(self.specset.labels[i])
        if self.targets is not None:
            target = self.targets[i].copy()
        else:
            target = np.zeros(self.num_classes, np.float32)
            target[cls] = 1.0
        if self.augmenter is not None:
            rng = np.random.default_rng([self.seed, self.epoch, i])
            spec, target = self.augmenter(spec, target, cls, rng)
        return torch.from_numpy(np.ascontiguousarray(spec))[None], torch.from_numpy(target)
