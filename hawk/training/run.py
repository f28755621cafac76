"""The train loop: folds, model (new or from a checkpoint), Lightning trainer, tracking and outputs."""

from __future__ import annotations

import csv
import json
import logging
import math
import os
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import lightning as L
import numpy as np
import torch
from torch.utils.data import DataLoader

from hawk.augment import AugmentSettings, Augmenter
from hawk.ckpt import class_codes, load_checkpoint, model_from_checkpoint, save_checkpoint
from hawk.embed_head import NAME as HEAD, HeadSettings
from hawk.fsutil import atomic_open
from hawk.models import count_parameters, create_model
from hawk.progress import is_terminal
from hawk.settings import from_mapping
from hawk.specset import SpecSet
from hawk.training.data import SpecDataset, make_splits
from hawk.training.distill import soft_targets, teacher_scores
from hawk.training.module import Classifier, class_weights

log = logging.getLogger(__name__)
NOISE = "Noise"


@dataclass(frozen=True)
class TrainSettings:
    model_name: str = "embed_head"
    num_epochs: int = 15
    batch_size: int = 64
    lr: float = 0.0025
    weight_decay: float = 0.0
    optimizer: str = "adamp"
    label_smoothing: float = 0.125
    use_class_weights: bool = True
    class_weight_power: float = 0.5
    drop_rate: float = 0.0
    val_portion: float = 0.2
    num_folds: int = 1
    save_last_n: int = 3
    average: bool = True  # one checkpoint: the weights of the last save_last_n epochs averaged (SWA-style)
    seed: int = 0
    num_workers: int | str = "auto"  # data-loader processes; auto: see resolve_workers
    load_ckpt_path: str | None = None
    update_classifier: bool = False  # a new head even when the class list matches the checkpoint's
    freeze_backbone: bool = False  # train the head only
    bn_recalibrate_batches: int = 20  # batch-norm statistics re-estimated on this many batches (0: off)
    distill: float = 0.0  # CNN targets: this share from the embedding head's out-of-fold scores (hawk/training/distill.py)
    augment: AugmentSettings = field(default_factory=AugmentSettings)
    head: HeadSettings = field(default_factory=HeadSettings)

    @classmethod
    def from_mapping(cls, cfg: dict[str, Any]) -> "TrainSettings":
        data = dict(cfg)
        data["augment"] = AugmentSettings.from_mapping(data.get("augment") or {})
        data["head"] = from_mapping(HeadSettings, data.get("head") or {}, "train.head")
        return from_mapping(cls, data, "train")


@dataclass(frozen=True)
class TrainerSettings:
    """Lightning scale-out knobs: accelerator auto uses a GPU when there is one."""

    accelerator: str = "auto"
    devices: Any = "auto"
    num_nodes: int = 1
    strategy: str = "auto"
    precision: str = "auto"  # auto: bf16-mixed where the device computes BF16 natively, else 32-true
    deterministic: bool = True
    progress: bool = True
    limit_train_batches: float = 1.0  # < 1: share of batches per epoch; > 1: number of batches (smoke runs)


@dataclass(frozen=True)
class Tracking:
    mlflow_uri: str = "sqlite:///mlflow.db"
    experiment: str = "hawk"
    tensorboard_dir: str = "logs"
    run_name: str | None = None  # the runs' common name (a DVC experiment's); see run_name
    preset: str | None = None
    tags: dict[str, str] = field(default_factory=dict)  # set on every run

    def run_name_for(self, model: str, fold: int, folds: int, data_sha: str) -> str:
        """What tells a run apart in the MLflow UI: the common name, else the preset and a short hash
        of the training set; then the model and, with k folds, the fold."""
        base = self.run_name or f"{self.preset or 'default'}-{data_sha[:7]}"
        return f"{base}-{model}" + (f"-f{fold}" if folds > 1 else "")


@dataclass
class FoldResult:
    fold: int
    epochs: list[dict[str, float]]
    checkpoints: list[Path]
    seconds: float
    samples: int
    run_id: str | None
    model: str = ""


def resolve_precision(precision: str, accelerator: str) -> str:
    """``auto``: BF16 mixed precision where the chip has BF16 arithmetic (CPUs with AVX512-BF16 or AMX,
    Ampere and later GPUs), which doubles CPU training throughput; full precision elsewhere, where
    emulated BF16 is slower than FP32."""
    if precision != "auto":
        return precision
    if _on_gpu(accelerator):
        return "bf16-mixed" if torch.cuda.is_bf16_supported() else "32-true"
    try:
        native = bool(torch.ops.mkldnn._is_mkldnn_bf16_supported())
    except (AttributeError, RuntimeError):
        native = False
    return "bf16-mixed" if native else "32-true"


def _on_gpu(accelerator: str) -> bool:
    return accelerator in ("gpu", "cuda") or (accelerator == "auto" and torch.cuda.is_available())


def resolve_workers(num_workers: int | str, accelerator: str) -> int:
    """``auto``: no loader processes on a CPU with up to 4 cores, where loading and augmenting a batch
    is ~7% of a step and worker processes only take cores from the training threads (2 cores: 55.7
    against 46.7 spectrograms/s with two workers); 2 on bigger CPUs, 4 feeding a GPU."""
    if num_workers != "auto":
        return int(num_workers)
    cores = os.cpu_count() or 1
    if _on_gpu(accelerator):
        return max(0, min(4, cores - 1))
    return 0 if cores <= 4 else 2


def build_model(s: TrainSettings, specset: SpecSet) -> tuple[torch.nn.Module, str]:
    """A fresh model, or one loaded from ``load_ckpt_path`` for transfer learning / fine-tuning."""
    k = len(specset.class_codes)
    if not s.load_ckpt_path:
        return create_model(s.model_name, k, s.drop_rate), s.model_name
    ckpt = load_checkpoint(s.load_ckpt_path)
    if ckpt["spec_settings"] != specset.meta["spec_settings"]:
        raise ValueError(f"{s.load_ckpt_path}: trained on other spectrogram settings than the training set; "
                         "re-extract with the checkpoint's audio settings")
    model = model_from_checkpoint(ckpt).train()
    if s.update_classifier or class_codes(ckpt) != specset.class_codes:
        model.reset_classifier(k)  # a new head for the new class list
    if s.freeze_backbone:
        for p in model.parameters():
            p.requires_grad = False
        for p in model.get_classifier().parameters():
            p.requires_grad = True
    return model, ckpt["model_name"]


class _SetEpoch(L.Callback):
    def __init__(self, dataset: SpecDataset):
        self.dataset = dataset

    def on_train_epoch_start(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        self.dataset.epoch = trainer.current_epoch


class _Recorder(L.Callback):
    """Per-epoch metrics, and the last ``save_last_n`` epochs kept: saved as hawk checkpoints, or with
    ``average`` their weights averaged (SWA-style) into one checkpoint, whose batch-norm statistics are
    then re-estimated. One averaged model costs a third of an ensemble of three at inference.

    A kept epoch's model is made ready (batch norm re-estimated, or the average swapped in on the last
    epoch) before that epoch's validation, so the validation metrics are those of what is saved; with
    no validation it is made ready at the epoch's end."""

    def __init__(self, fold: int, ckpt_dir: Path, prefix: str, save_last_n: int, average: bool, meta: dict[str, Any]):
        self.fold, self.ckpt_dir, self.prefix, self.meta = fold, ckpt_dir, prefix, meta
        self.save_last_n, self.average = save_last_n, average
        self.epochs: list[dict[str, float]] = []
        self.checkpoints: list[Path] = []
        self._sum: dict[str, torch.Tensor] = {}
        self._averaged = 0
        self._ready = 0  # the last epoch made ready

    def _kept(self, trainer: L.Trainer) -> bool:
        return trainer.current_epoch + 1 > trainer.max_epochs - self.save_last_n

    def _make_ready(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        """On every rank, so that distributed validation sees one model everywhere."""
        epoch = trainer.current_epoch + 1
        if self._ready == epoch or not self._kept(trainer):
            return
        self._ready = epoch
        if not self.average:
            pl_module.recalibrate_bn()
            return
        model = pl_module.model
        for k, v in model.state_dict().items():
            if v.is_floating_point():
                self._sum[k] = self._sum.get(k, 0) + v.detach().double()
        self._averaged += 1
        if epoch == trainer.max_epochs:  # no step follows: the model becomes the average
            model.load_state_dict({k: (self._sum[k] / self._averaged).to(v.dtype) if k in self._sum else v
                                   for k, v in model.state_dict().items()})
            pl_module.recalibrate_bn()

    def on_validation_epoch_start(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        if trainer.state.fn == "fit":
            self._make_ready(trainer, pl_module)

    def on_train_epoch_end(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        self._make_ready(trainer, pl_module)
        if not trainer.is_global_zero:
            return
        m = {k: float(v) for k, v in trainer.callback_metrics.items() if v.numel() == 1}
        epoch = trainer.current_epoch + 1
        self.epochs.append({"fold": self.fold, "epoch": epoch, **m,
                            "data_wait_share": pl_module.data_wait_share(), "step_seconds": pl_module.step_seconds})
        if not self._kept(trainer):
            return
        if not self.average:
            self._save(trainer, pl_module.model, f"e{epoch:02d}", {"epoch": epoch})
        elif epoch == trainer.max_epochs:
            first = epoch - self._averaged + 1
            self._save(trainer, pl_module.model, f"avg{self._averaged}",
                       {"epoch": epoch, "averaged_epochs": list(range(first, epoch + 1))})

    def _save(self, trainer: L.Trainer, model: torch.nn.Module, tag: str, extra: dict[str, Any]) -> None:
        path = self.ckpt_dir / f"{self.prefix}-{tag}.ckpt"
        run_id = next((lg.run_id for lg in trainer.loggers if hasattr(lg, "run_id")), None)
        save_checkpoint(path, self.meta["model_name"], model, self.meta["classes"], self.meta["spec_settings"],
                        self.meta["data"], {**self.meta["extra"], **extra, "fold": self.fold, "mlflow_run_id": run_id})
        self.checkpoints.append(path)


class _EpochLine(L.Callback):
    """In a log (not a terminal), one line per epoch instead of Lightning's carriage-return bar."""

    def on_train_epoch_end(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        if trainer.is_global_zero:
            m = {k: float(v) for k, v in trainer.callback_metrics.items() if v.numel() == 1 and k != "lr"}
            print(f"train: epoch {trainer.current_epoch + 1}/{trainer.max_epochs}, "
                  + ", ".join(f"{k} {v:.4f}" for k, v in sorted(m.items())), flush=True)


def _loggers(tracking: Tracking, fold: int, run_name: str) -> list:
    from lightning.pytorch.loggers import MLFlowLogger, TensorBoardLogger

    return [MLFlowLogger(experiment_name=tracking.experiment, tracking_uri=tracking.mlflow_uri, run_name=run_name,
                         tags=dict(tracking.tags)),
            TensorBoardLogger(save_dir=tracking.tensorboard_dir, name=f"fold-{fold}")]


def train(specset_dir: Path, s: TrainSettings, t: TrainerSettings, tracking: Tracking, ckpt_dir: Path,
          params: dict[str, Any] | None = None) -> list[FoldResult]:
    """Train one model per fold; checkpoints of the last ``save_last_n`` epochs go to ``ckpt_dir``."""
    L.seed_everything(s.seed, workers=True, verbose=False)
    specset = SpecSet.open(specset_dir)
    codes = specset.class_codes
    splits = make_splits(specset.groups, specset.labels, s.val_portion, s.num_folds, s.seed)
    noise = codes.index(NOISE) if NOISE in codes else None
    weights = (class_weights(specset.labels, len(codes), s.class_weight_power) if s.use_class_weights
               else np.ones(len(codes), np.float32))
    ckpt_dir.mkdir(parents=True, exist_ok=True)
    precision = resolve_precision(t.precision, t.accelerator)
    workers = resolve_workers(s.num_workers, t.accelerator)
    bar = t.progress and is_terminal()
    results = []
    for fold, (train_idx, val_idx) in enumerate(splits):
        L.seed_everything(s.seed + fold, workers=True, verbose=False)
        model, model_name = build_model(s, specset)
        train_ds = SpecDataset(specset, train_idx, seed=s.seed + fold, targets=_targets(specset, train_idx, s, weights))
        train_ds.augmenter = Augmenter(s.augment, specset.labels, train_ds.fetch, noise)
        loader_args = {"batch_size": s.batch_size, "num_workers": workers,
                       "persistent_workers": False, "pin_memory": torch.cuda.is_available()}
        train_dl = DataLoader(train_ds, shuffle=True, drop_last=False,
                              generator=torch.Generator().manual_seed(s.seed + fold), **loader_args)
        val_dl = DataLoader(SpecDataset(specset, val_idx), shuffle=False, **loader_args) if len(val_idx) else None
        prefix = f"{model_name}" + (f"-f{fold}" if len(splits) > 1 else "")
        run_name = tracking.run_name_for(model_name, fold, len(splits), specset.meta["data"]["specs_sha256"])
        meta = {"model_name": model_name, "classes": list(zip(specset.class_names, codes)),
                "spec_settings": specset.meta["spec_settings"], "data": specset.meta["data"],
                "extra": {"train": json.loads(json.dumps(asdict(s), default=str)),
                          "parameters": count_parameters(model)}}
        recorder = _Recorder(fold, ckpt_dir, prefix, s.save_last_n, s.average, meta)
        loggers = _loggers(tracking, fold, run_name)
        trainer = L.Trainer(
            max_epochs=s.num_epochs, accelerator=t.accelerator, devices=t.devices, num_nodes=t.num_nodes,
            strategy=t.strategy, precision=precision, deterministic=t.deterministic, logger=loggers,
            callbacks=[_SetEpoch(train_ds), recorder] + ([_EpochLine()] if t.progress and not bar else []),
            enable_checkpointing=False, num_sanity_val_steps=0,
            log_every_n_steps=max(1, min(50, math.ceil(len(train_idx) / s.batch_size))),
            enable_progress_bar=bar, enable_model_summary=False,
            limit_train_batches=t.limit_train_batches if t.limit_train_batches <= 1 else int(t.limit_train_batches))
        if trainer.is_global_zero:
            flat = {**(params or {}), "fold": fold, "train_spectrograms": len(train_idx),
                    "val_spectrograms": len(val_idx), "parameters": meta["extra"]["parameters"],
                    "precision": precision, "loader_workers": workers}
            loggers[0].log_hyperparams(flat)
        recal = DataLoader(SpecDataset(specset, train_idx), shuffle=True,
                           generator=torch.Generator().manual_seed(s.seed + fold), **loader_args)
        module = Classifier(model, weights, s.lr, s.weight_decay, s.label_smoothing, s.optimizer, recal,
                            s.bn_recalibrate_batches)
        start = time.perf_counter()
        trainer.fit(module, train_dl, val_dl)
        seconds = time.perf_counter() - start
        run_id = getattr(loggers[0], "run_id", None) if trainer.is_global_zero else None
        results.append(FoldResult(fold, recorder.epochs, recorder.checkpoints, seconds,
                                  len(train_idx) * s.num_epochs, run_id, model_name))
    return results


def _targets(specset: SpecSet, rows: np.ndarray, s: TrainSettings, weights: np.ndarray) -> np.ndarray | None:
    """Soft targets of every row for ``train.distill`` (None: the labels), from heads trained on the
    training rows only, so the validation recordings stay unseen."""
    if not s.distill:
        return None
    k = len(specset.class_codes)
    teacher = teacher_scores(specset.vectors()[rows], specset.labels[rows], [specset.groups[i] for i in rows], k,
                             weights, s.head, seed=s.seed)
    out = np.eye(k, dtype=np.float32)[specset.labels]
    out[rows] = soft_targets(specset.labels[rows], teacher, s.distill)
    return out


def write_outputs(results: list[FoldResult], metrics_json: Path, epochs_csv: Path, plot_png: Path,
                  tracking: Tracking) -> dict[str, Any]:
    """DVC metrics (final epoch, averaged over folds), per-epoch curves as CSV and PNG; the PNG and the
    checkpoints are logged to each fold's MLflow run. An embedding head trained beside a CNN reports
    its metrics as ``head_<metric>``."""
    main = [r for r in results if r.model == results[0].model] if results else []
    summary: dict[str, Any] = {}
    for prefix, group in (("", main), ("head_", [r for r in results if r.model != main[0].model])):
        finals = [r.epochs[-1] for r in group if r.epochs]
        keys = sorted({k for f in finals for k in f} - {"fold", "epoch", "model"})
        summary.update({f"{prefix}{k}": float(np.nanmean([f.get(k, np.nan) for f in finals])) for k in keys})
    summary["folds"] = len(main)
    summary["spectrograms_per_s"] = sum(r.samples for r in main) / max(sum(r.seconds for r in main), 1e-9)
    summary["checkpoints"] = [str(p) for r in results for p in r.checkpoints]
    summary["mlflow_run_ids"] = [r.run_id for r in results]
    summary = {k: (None if isinstance(v, float) and math.isnan(v) else v) for k, v in summary.items()}
    with atomic_open(metrics_json, "w", encoding="utf-8") as f:
        json.dump(summary, f, indent=2)
    cols = ["model", "fold", "epoch", "train_loss", "val_loss", "val_macro_ap", "val_micro_ap", "lr", "data_wait_share"]
    with atomic_open(epochs_csv, "w", newline="", encoding="utf-8") as f:
        w = csv.DictWriter(f, cols, extrasaction="ignore")
        w.writeheader()
        for r in results:
            w.writerows({"model": r.model, **e} for e in r.epochs)
    _plot_curves(results, plot_png)
    import mlflow

    mlflow.set_tracking_uri(tracking.mlflow_uri)
    client = mlflow.MlflowClient()
    for r in results:
        if r.run_id:
            client.log_artifact(r.run_id, str(plot_png), "plots")
            client.log_artifact(r.run_id, str(epochs_csv), "plots")
            for p in r.checkpoints:
                client.log_artifact(r.run_id, str(p), "checkpoints")
    return summary


def _plot_curves(results: list[FoldResult], path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    # a CNN counts epochs, an embedding head full-batch steps: beside each other, both run from 0 to 1
    kinds = {r.model == HEAD for r in results}
    xlabel = ("share of training (CNN: epochs, head: steps)" if len(kinds) > 1
              else "step (full batch)" if kinds == {True} else "epoch")
    fig, (a, b) = plt.subplots(1, 2, figsize=(10, 3.6))
    for r in results:
        ep = [e["epoch"] for e in r.epochs]
        if len(kinds) > 1 and ep:
            ep = [x / max(ep) for x in ep]
        tag = f" ({r.model}, fold {r.fold})" if len(results) > 1 else ""
        a.plot(ep, [e.get("train_loss", np.nan) for e in r.epochs], "-o", label=f"train{tag}")
        if any("val_loss" in e for e in r.epochs):
            a.plot(ep, [e.get("val_loss", np.nan) for e in r.epochs], "-s", label=f"validation{tag}")
            b.plot(ep, [e.get("val_macro_ap", np.nan) for e in r.epochs], "-o", label=f"macro AP{tag}")
            b.plot(ep, [e.get("val_micro_ap", np.nan) for e in r.epochs], "-s", label=f"micro AP{tag}")
    a.set(xlabel=xlabel, ylabel="loss", title="loss")
    b.set(xlabel=xlabel, ylabel="average precision", title="validation AP", ylim=(0, 1.02))
    for ax in (a, b):
        ax.grid(alpha=0.3)
        if ax.lines:
            ax.legend(fontsize=8)
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=110)
    plt.close(fig)
