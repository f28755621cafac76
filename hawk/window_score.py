"""Curation by the model: how likely each training window is to hold its class, judged by a model
that never saw its recording.

A class's recordings are labelled by species, not by window: a bird sings in bouts, so many 3-s
windows of a "Swainson's Thrush" recording hold only rain, speech or another bird. Energy cannot tell
those apart on recorded backgrounds; a model can. Every window's pretrained embedding (BirdNET) goes
into a linear probe (multinomial logistic regression, classes weighted equally) trained on folds
grouped by recording, and by duplicate group, so a window is scored by the fold model that saw
neither its recording nor a copy of it: its *out-of-fold* score for its own class.

A window is judged by two comparisons, because both a recording's background and the class's own
share of background shift the raw probability. Against the background class (Noise): its own-class
probability as a share of own plus Noise, so "more like its bird than like rain". Against its own
recording: that share divided by the recording's ``recording_quantile`` (0.75) of it, capped at 1. A
recording's background (a loud stream, distant traffic) lowers all its windows alike, and its pauses
still stand out from its calls; a recording full of song keeps nearly every window. This is the
*keep score* select judges (:func:`keep_scores`).

Round 1 learns from every window as labelled. Background windows of a bird class then score low,
but they also taught round 1 that background is a little of every bird. Each later round teaches
the windows whose keep score was below ``relabel_below`` as the background class instead and scores
everything again; the classes kept whole (Noise, Other) are never relabelled, and no class loses more than
half its windows to background (a class taught nothing but background would score nothing).
"""

from __future__ import annotations

import csv
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from hawk.errors import HawkError
from hawk.fsutil import atomic_open


class ScoreError(HawkError, ValueError):
    """Window scoring that cannot run (too few recordings, one class)."""


@dataclass(frozen=True)
class ScoreSettings:
    folds: int = 5
    rounds: int = 3
    relabel_below: float = 0.5  # a window whose keep score is under this is taught as background next round
    recording_quantile: float = 0.75  # a window's score is judged against this quantile of its recording's
    c: float = 1.0  # inverse regularisation strength of the probe
    seed: int = 0


@dataclass(frozen=True)
class Window:
    code: str
    file: str
    offset: float


def fold_of(groups: Sequence[str], folds: int, seed: int) -> np.ndarray:
    """A fold number per item, whole groups together, groups dealt round-robin in a seeded order."""
    names = sorted(set(groups))
    order = np.random.default_rng(seed).permutation(len(names))
    fold = {names[i]: k % folds for k, i in enumerate(order)}
    return np.array([fold[g] for g in groups], np.int64)


def out_of_fold(vectors: np.ndarray, labels: np.ndarray, groups: Sequence[str], n_classes: int,
                settings: ScoreSettings = ScoreSettings(), background: int | None = None,
                relabel: np.ndarray | None = None, recordings: Sequence[str] | None = None) -> np.ndarray:
    """(n, n_classes) class probabilities of every window from the fold model that did not train on
    its group. ``background`` is the class that later rounds teach low-scoring windows as (None: they
    are left out of training instead); ``relabel`` marks the windows they may relabel;
    ``recordings`` names each window's recording (default: its group) for :func:`keep_scores`."""
    labels = np.asarray(labels)
    if len(set(labels.tolist())) < 2:
        raise ScoreError("window scoring needs at least two classes")
    folds = min(settings.folds, len(set(groups)))
    if folds < 2:
        raise ScoreError("window scoring needs recordings in at least two groups")
    fold = fold_of(groups, folds, settings.seed)
    train_labels = labels.copy()
    use = np.ones(len(labels), bool)
    probs = np.zeros((len(labels), n_classes), np.float32)
    for round_ in range(settings.rounds):
        if round_:
            own = keep_scores(probs, labels, recordings or groups, background, settings.recording_quantile)
            low = (own < settings.relabel_below) & (relabel if relabel is not None else True)
            for c in np.unique(labels):  # never more than half a class: it must keep positives to learn
                mine = labels == c
                low[mine] &= own[mine] < np.median(own[mine])
            if background is None:
                use = ~low
            else:
                train_labels = np.where(low, background, labels)
        probs = _score_folds(vectors, train_labels, use, fold, folds, n_classes, settings)
    return probs


def _score_folds(x: np.ndarray, y: np.ndarray, use: np.ndarray, fold: np.ndarray, folds: int, n_classes: int,
                 settings: ScoreSettings) -> np.ndarray:
    from sklearn.linear_model import LogisticRegression

    out = np.zeros((len(y), n_classes), np.float32)
    for k in range(folds):
        train, test = (fold != k) & use, fold == k
        seen = np.unique(y[train])
        if len(seen) < 2:  # a fold whose training part holds one class says nothing
            out[test] = 1.0 / n_classes
            continue
        model = LogisticRegression(C=settings.c, max_iter=2000, class_weight="balanced")
        model.fit(x[train], y[train])
        out[np.ix_(test, model.classes_)] = model.predict_proba(x[test])
    return out


FIELDS = ("file", "offset", "score", "relative", "other", "other_score")


def relative_scores(probs: np.ndarray, labels: np.ndarray, background: int | None = None) -> np.ndarray:
    """Each window's own-class probability as a share of own plus the background class's (or, with
    no background class, of the best class's). A share, not the probability itself, which shrinks as
    classes are added (an 8-class and a 100-class project would need different thresholds)."""
    own = probs[np.arange(len(labels)), labels]
    if background is None:
        return own / np.maximum(probs.max(axis=1), 1e-12)
    return own / np.maximum(own + probs[:, background], 1e-12)


def keep_scores(probs: np.ndarray, labels: np.ndarray, recordings: Sequence[str], background: int | None,
                quantile: float) -> np.ndarray:
    """:func:`relative_scores` as a share of its recording's ``quantile``, capped at 1 (see the
    module docstring): what select judges."""
    rel = relative_scores(probs, labels, background)
    _, which = np.unique(np.asarray(recordings), return_inverse=True)
    order = np.argsort(which, kind="stable")
    level = np.empty_like(rel)
    for mine in np.split(order, np.flatnonzero(np.diff(which[order])) + 1):
        level[mine] = np.quantile(rel[mine], quantile)
    return np.minimum(rel / np.maximum(level, 1e-12), 1.0)


def write_scores(path: str | Path, windows: Sequence[Window], probs: np.ndarray, keep: np.ndarray,
                 codes: Sequence[str]) -> None:
    """One class's windows: own-class probability, keep score (:func:`keep_scores`, column
    ``relative``), and the other class that scores highest (a secondary species or a confusion shows
    there)."""
    index = {c: i for i, c in enumerate(codes)}
    with atomic_open(path, "w", newline="", encoding="utf-8") as f:
        w = csv.writer(f)
        w.writerow(FIELDS)
        for win, p, k in zip(windows, probs, keep):
            own = index[win.code]
            rest = p.copy()
            rest[own] = -1
            other = int(rest.argmax())
            w.writerow([win.file, win.offset, f"{p[own]:.4f}", f"{k:.4f}", codes[other], f"{p[other]:.4f}"])


def read_scores(path: str | Path) -> dict[str, dict[float, float]]:
    """file -> offset -> keep score, as :class:`hawk.curation.ThresholdFilter` takes them."""
    out: dict[str, dict[float, float]] = {}
    with open(path, newline="", encoding="utf-8") as f:
        for row in csv.DictReader(f):
            out.setdefault(row["file"], {})[float(row["offset"])] = float(row["relative"])
    return out


def groups_of(windows: Sequence[Window], duplicates: Mapping[tuple[str, str], int]) -> list[str]:
    """Each window's group: its recording, or its duplicate group when dedup found copies."""
    return [f"dup{duplicates[(w.code, w.file)]}" if (w.code, w.file) in duplicates else f"{w.code}/{w.file}"
            for w in windows]
