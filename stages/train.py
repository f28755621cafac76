"""train: a model (per fold) from the training set, the seed's train.py, with Lightning and timm.

The weights of the last train.save_last_n epochs are averaged into one checkpoint in models/ckpt/
(train.average=false: one checkpoint per epoch, HawkEars' way); each carries its classes, audio
settings and the hashes of its training data, and infer ensembles every checkpoint there (folds). Metrics go to
metrics/train.json (`dvc exp show`), per-epoch curves to metrics/train_epochs.csv (`dvc plots show`)
and metrics/train_curves.png; every run is logged to MLflow (`mlflow ui --backend-store-uri
sqlite:///mlflow.db`) and TensorBoard (`tensorboard --logdir logs`).

    python -m stages.train [train.model_name=custom_hgnet_1 train.num_epochs=5 trainer.devices=2 ...]
    dvc exp run -S train.lr=0.001            # an experiment
    dvc exp run -S experiment=train_all      # a preset from conf/experiment/
"""

from __future__ import annotations

import shutil
from pathlib import Path

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


def main() -> None:
    cfg = load_config(parser(__doc__).parse_args())
    # after the arguments: Lightning takes many seconds to import, and --help should not wait for it
    from hawk.training.run import Tracking, TrainerSettings, TrainSettings, train, write_outputs

    raw = OmegaConf.to_container(cfg, resolve=True)
    s = TrainSettings.from_mapping(raw["train"])
    t = TrainerSettings(**raw["trainer"])
    raw["tracking"]["mlflow_uri"] = tracking_path(raw["tracking"]["mlflow_uri"])
    raw["tracking"]["tensorboard_dir"] = tracking_path(raw["tracking"]["tensorboard_dir"])
    tracking = Tracking(**raw["tracking"])
    ckpt_dir = Path(cfg.paths.ckpt)
    if ckpt_dir.exists():  # only this run's checkpoints: infer ensembles everything here
        shutil.rmtree(ckpt_dir)
    params = _flat({"train": raw["train"], "trainer": raw["trainer"], "audio": raw["audio"]})
    results = train(Path(cfg.paths.specs), s, t, tracking, ckpt_dir, params)
    if not results or results[0].run_id is None:  # not rank 0 of a multi-process run
        return
    metrics = Path(cfg.paths.metrics)
    summary = write_outputs(results, metrics / "train.json", metrics / "train_epochs.csv",
                            metrics / "train_curves.png", tracking)
    ap = summary.get("val_macro_ap")
    print(f"train: {len(summary['checkpoints'])} checkpoints in {ckpt_dir}; "
          f"val macro AP {ap if ap is None else round(ap, 3)}; {summary['spectrograms_per_s']:.1f} spectrograms/s")


if __name__ == "__main__":
    run(main)
