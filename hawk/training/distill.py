"""Distillation: the CNN learns from the embedding head's scores as well as from the labels
(``train.distill``).

Why: a class's label says which recording a window came from, not what the window holds. Curation
drops most empty windows, but the doubtful ones it keeps, and other birds calling behind the focal
one (secondary species), are still taught as "all of this class and nothing else". The head on
pretrained embeddings (:mod:`hawk.embed_head`) judges a window better than its label does; scored by
heads that never saw the window's recording and Platt-calibrated against the labels, its
probabilities become part of the CNN's targets: ``(1 - weight) * label + weight * teacher``.
"""

from __future__ import annotations

from dataclasses import replace

import numpy as np
import torch

from hawk.embed_head import HeadError, HeadSettings, train_head
from hawk.evaluate import fit_platt
from hawk.infer import calibrate
from hawk.window_score import fold_of


def teacher_scores(x: np.ndarray, labels: np.ndarray, groups: list[str], num_classes: int, weights: np.ndarray,
                   settings: HeadSettings, folds: int = 5, seed: int = 0) -> np.ndarray:
    """(n, num_classes) probabilities of every row from a head trained on the folds that do not hold
    its group (recording), calibrated on all of them against the labels. Rows without an embedding
    (a zero vector) get their label."""
    labels = np.asarray(labels, np.int64)
    hard = np.eye(num_classes, dtype=np.float32)[labels]
    has = np.linalg.norm(x, axis=1) > 0
    fold = fold_of(groups, min(folds, len(set(groups))), seed)
    if len(set(fold[has].tolist())) < 2:
        raise HeadError("distillation needs embedded windows from at least two recordings")
    probs = hard.copy()
    xt = torch.from_numpy(np.ascontiguousarray(x, np.float32))
    plain = replace(settings, calibrate=False, refit=False)  # calibrated below, on every fold's scores at once
    for k in np.unique(fold[has]):
        train, test = np.flatnonzero(has & (fold != k)), np.flatnonzero(has & (fold == k))
        model = train_head(x, labels, train, train[:0], num_classes, weights, plain, seed=seed + int(k)).model
        with torch.no_grad():
            probs[test] = torch.sigmoid(model(xt[test])).numpy()
    platt = fit_platt(probs[has], hard[has])
    if platt is not None and platt["a"] > 0:
        probs[has] = calibrate(probs[has], platt["a"], platt["b"])
    return probs


def soft_targets(labels: np.ndarray, teacher: np.ndarray, weight: float) -> np.ndarray:
    """``(1 - weight) * one-hot label + weight * teacher``, per row."""
    hard = np.eye(teacher.shape[1], dtype=np.float32)[np.asarray(labels, np.int64)]
    return ((1 - weight) * hard + weight * teacher).astype(np.float32)
