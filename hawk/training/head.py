"""Training the embedding head per fold: the CNN's splits and class weights, MLflow runs, checkpoints."""

from __future__ import annotations

import json
import time
from dataclasses import asdict, replace
from pathlib import Path
from typing import Any

import numpy as np

from hawk.embed_head import (NAME, HeadError, HeadRun, HeadSettings, Verdicts, apply_platt, save_head,
                              train_head)
from hawk.negatives import FIELD
from hawk.specset import SpecSet
from hawk.training.data import make_splits
from hawk.training.module import class_weights
from hawk.training.run import FoldResult, Tracking, TrainSettings


def train_heads(specset_dir: Path, s: TrainSettings, tracking: Tracking, ckpt_dir: Path,
                params: dict[str, Any] | None = None) -> list[FoldResult]:
    """One head per fold (the CNN's split, so validation metrics compare), saved to ``ckpt_dir`` as
    ``embed_head[-f<fold>].ckpt``. Rows whose recording the embedder skipped are left out. With one
    fold and ``head.refit``, the head is trained again on every recording once validation has given
    its metrics and calibration: seconds more, and on few recordings the held-out fifth matters (on
    the recorded kit, +0.02 to +0.05 per-sound AP)."""
    specset = SpecSet.open(specset_dir)
    x = specset.vectors()
    has = np.linalg.norm(x, axis=1) > 0
    if not has.any():
        raise HeadError(f"{specset_dir}: no training window has an embedding")
    codes = specset.class_codes
    splits = make_splits(specset.groups, specset.labels, s.val_portion, s.num_folds, s.seed)
    weights = (class_weights(specset.labels[has], len(codes), s.class_weight_power) if s.use_class_weights
               else np.ones(len(codes), np.float32))
    x, labels, verdicts = with_negatives(specset, x)
    by_model = verdicts.model_rows()
    said_no = np.flatnonzero(verdicts.no & (~by_model | (s.head.dropped_weight > 0)))  # rows that train
    classes = list(zip(specset.class_names, codes))
    ckpt_dir.mkdir(parents=True, exist_ok=True)
    results = []
    for fold, (train_idx, val_idx) in enumerate(splits):
        train_idx, val_idx = train_idx[has[train_idx]], val_idx[has[val_idx]]
        start = time.perf_counter()
        refit = s.head.refit and len(splits) == 1 and len(val_idx) > 0
        run = fit_head(x, labels, np.concatenate([train_idx, said_no]), val_idx,
                       np.concatenate([np.flatnonzero(has), said_no]) if refit else None, len(codes),
                       weights, s.head, s.label_smoothing, s.seed + fold, verdicts)
        name = NAME + (f"-f{fold}" if len(splits) > 1 else "")
        run_id = _log_run(tracking, tracking.run_name_for(NAME, fold, len(splits), specset.meta["data"]["specs_sha256"]),
                          run.epochs, {
            **(params or {}), "fold": fold, "train_spectrograms": len(train_idx), "val_spectrograms": len(val_idx),
            "refit_spectrograms": int(has.sum()) if refit else 0,
            "windows_without_embedding": int((~has).sum()), "negatives_said_no": int((verdicts.no & ~by_model).sum()),
            "negatives_dropped_by_model": int(by_model[said_no].sum()),
            "field_clips_confirmed": int(verdicts.own_only.sum()),
            **{f"calibration_{k}": v for k, v in (run.calibration or {}).items()}})
        path = save_head(ckpt_dir / f"{name}.ckpt", run, classes, specset.meta,
                         {"train": json.loads(json.dumps(asdict(s), default=str)), "fold": fold, "mlflow_run_id": run_id,
                          "calibration": run.calibration, "parameters": sum(p.numel() for p in run.model.parameters())})
        results.append(FoldResult(fold, [{"fold": fold, **e} for e in run.epochs], [path],
                                  time.perf_counter() - start, len(train_idx) * s.head.steps, run_id, NAME))
    return results


def with_negatives(specset: SpecSet, x: np.ndarray) -> tuple[np.ndarray, np.ndarray, Verdicts]:
    """(vectors, class per row, the rows' verdicts): the set's rows, then the negatives (hawk.negatives,
    ``verdicts.no``: a person's no, or a window curation by the model dropped), which train but never
    validate. A confirmed clip of the user's own recordings (source field) is a yes for its class only."""
    neg = specset.negatives()
    col = {c: k for k, c in enumerate(specset.class_codes)}
    keep = [i for i, c in enumerate(neg.codes) if c in col] if neg is not None and len(neg) else []
    n = len(x)
    if keep:
        x = np.concatenate([x, neg.vectors[keep]])
    labels = np.concatenate([specset.labels, np.array([col[neg.codes[i]] for i in keep], np.int64)])
    own_only = np.array([r.get("source") == FIELD for r in specset.rows] + [False] * len(keep))
    by_model = np.concatenate([np.zeros(n, bool), neg.by_model()[keep] if keep else np.zeros(0, bool)])
    return x, labels, Verdicts(np.arange(len(labels)) >= n, own_only, by_model)


def fit_head(x: np.ndarray, labels: np.ndarray, train_idx: np.ndarray, val_idx: np.ndarray, refit_idx: np.ndarray | None,
             num_classes: int, weights: np.ndarray, settings: HeadSettings, label_smoothing: float, seed: int,
             verdicts: Verdicts | None = None) -> HeadRun:
    """Train on ``train_idx``, validate and calibrate on ``val_idx``; with ``refit_idx``, the returned
    model is trained again on those rows (every window) and given the validation's calibration, while
    the metrics stay the validated run's."""
    run = train_head(x, labels, train_idx, val_idx, num_classes, weights, settings, label_smoothing, seed,
                     verdicts=verdicts)
    if refit_idx is None:
        return run
    final = train_head(x, labels, refit_idx, refit_idx[:0], num_classes, weights, replace(settings, calibrate=False),
                       label_smoothing, seed, verdicts=verdicts).model
    if run.calibration:
        apply_platt(final, run.calibration)
    return replace(run, model=final)


def _log_run(tracking: Tracking, run_name: str, epochs: list[dict[str, float]], params: dict[str, Any]) -> str:
    """An MLflow run holding the head's parameters and per-step metrics, in one batch."""
    import mlflow
    from mlflow.entities import Metric, Param

    mlflow.set_tracking_uri(tracking.mlflow_uri)
    client = mlflow.MlflowClient()
    exp = client.get_experiment_by_name(tracking.experiment)
    exp_id = exp.experiment_id if exp else client.create_experiment(tracking.experiment)
    run = client.create_run(exp_id, run_name=run_name, tags=dict(tracking.tags))
    now = int(time.time() * 1000)
    metrics = [Metric(k, float(v), now, int(e["epoch"])) for e in epochs for k, v in e.items() if k != "epoch"]
    items = [Param(k, str(v)[:500]) for k, v in params.items()]
    for i in range(0, max(len(items), len(metrics)), 100):
        client.log_batch(run.info.run_id, metrics=metrics[i : i + 100], params=items[i : i + 100])
    client.set_terminated(run.info.run_id)
    return run.info.run_id
