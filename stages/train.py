"""train: a model (per fold) from the training set, the seed's train.py, with Lightning and timm.

The weights of the last train.save_last_n epochs are averaged into one checkpoint in models/ckpt/
(train.average=false: one checkpoint per epoch, HawkEars' way); each carries its classes, audio
settings and the hashes of its training data, and infer ensembles every checkpoint there (folds). Metrics go to
metrics/train.json (`dvc exp show`), per-epoch curves to metrics/train_epochs.csv (`dvc plots show`)
and metrics/train_curves.png; every run is logged to MLflow (`mlflow ui --backend-store-uri
sqlite:///mlflow.db`) and TensorBoard (`tensorboard --logdir logs`). A run is named by the DVC experiment
under `dvc exp run` (else preset and training-set hash), then model and fold, and tagged with the DVC
experiment, baseline commit, training-set and class-list hashes, preset and hawk version.

train.model_name=embed_head trains only an embedding head (hawk/embed_head.py: a small MLP on each
window's BirdNET embedding, seconds to train); train.head.enabled=true trains one beside the CNN, and
infer ensembles both. BirdNET's weights are licensed CC BY-NC-SA 4.0 (non-commercial, share alike).

    python -m stages.train [train.model_name=custom_hgnet_1 train.num_epochs=5 trainer.devices=2 ...]
    dvc exp run -S train.lr=0.001            # an experiment
    dvc exp run -S experiment=train_all      # a preset from conf/experiment/
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
from pathlib import Path

import hawk

from omegaconf import OmegaConf

from stages._cli import load_config, parser, run, tracking_path


def _flat(d: dict, prefix: str = "") -> dict:
    out = {}
    for k, v in d.items():
        if isinstance(v, dict):
            out.update(_flat(v, f"{prefix}{k}."))
        else:
            out[f"{prefix}{k}"] = v
    return out


def run_tags(cfg) -> dict[str, str]:
    """Tags that say where a run came from, so the MLflow UI and `dvc exp show` can be matched up: the
    DVC experiment and its baseline commit (under `dvc exp run`), the training set's and the class list's
    hashes, the preset, hawk's version."""
    meta = json.loads((Path(cfg.paths.specs) / "meta.json").read_text(encoding="utf-8"))
    classes = Path(cfg.paths.classes_txt)
    tags = {"hawk.version": hawk.__version__, "hawk.preset": str(cfg.tracking.preset or "none"),
            "hawk.train_data": meta["data"]["specs_sha256"],
            "hawk.classes": hashlib.sha256(classes.read_bytes()).hexdigest() if classes.exists() else "",
            "hawk.class_count": str(len(meta["classes"]))}
    for tag, var in (("dvc.experiment", "DVC_EXP_NAME"), ("dvc.baseline", "DVC_EXP_BASELINE_REV")):
        if os.environ.get(var):
            tags[tag] = os.environ[var]
    if os.environ.get("DVC_EXP_BASELINE_REV"):
        tags["mlflow.source.git.commit"] = os.environ["DVC_EXP_BASELINE_REV"]
    return tags


def main() -> None:
    cfg = load_config(parser(__doc__).parse_args())
    # after the arguments: Lightning takes many seconds to import, and --help should not wait for it
    from hawk.embed_head import NAME
    from hawk.training.head import train_heads
    from hawk.training.run import Tracking, TrainerSettings, TrainSettings, train, write_outputs

    raw = OmegaConf.to_container(cfg, resolve=True)
    s = TrainSettings.from_mapping(raw["train"])
    t = TrainerSettings(**raw["trainer"])
    raw["tracking"]["mlflow_uri"] = tracking_path(raw["tracking"]["mlflow_uri"])
    raw["tracking"]["tensorboard_dir"] = tracking_path(raw["tracking"]["tensorboard_dir"])
    tracking = Tracking(**{**raw["tracking"], "run_name": raw["tracking"]["run_name"] or os.environ.get("DVC_EXP_NAME")},
                        tags=run_tags(cfg))
    ckpt_dir = Path(cfg.paths.ckpt)
    if ckpt_dir.exists():  # only this run's checkpoints: infer ensembles everything here
        shutil.rmtree(ckpt_dir)
    params = _flat({"train": raw["train"], "trainer": raw["trainer"], "audio": raw["audio"]})
    specs = Path(cfg.paths.specs)
    results = [] if s.model_name == NAME else train(specs, s, t, tracking, ckpt_dir, params)
    if results and results[0].run_id is None:  # not rank 0 of a multi-process run
        return
    if s.model_name == NAME or s.head.enabled:
        results += train_heads(specs, s, tracking, ckpt_dir, params)
    metrics = Path(cfg.paths.metrics)
    summary = write_outputs(results, metrics / "train.json", metrics / "train_epochs.csv",
                            metrics / "train_curves.png", tracking)
    ap = summary.get("val_macro_ap")
    head = summary.get("head_val_macro_ap")
    print(f"train: {len(summary['checkpoints'])} checkpoints in {ckpt_dir}; "
          f"val macro AP {ap if ap is None else round(ap, 3)}"
          + (f" (embedding head {round(head, 3)})" if head is not None else "")
          + f"; {summary['spectrograms_per_s']:.1f} spectrograms/s")


if __name__ == "__main__":
    run(main)
