"""Shared start-up of the stage entry points: arguments, the composed config, logging.

Stages read ``params.yaml`` (the composition of ``conf/``, which ``dvc exp run`` rewrites) through
Hydra's compose API, so ``key=value`` overrides work by hand exactly as ``-S key=value`` does in DVC.
"""

from __future__ import annotations

import argparse
import logging
import os
import sys
from pathlib import Path

from hydra import compose, initialize_config_dir
from omegaconf import DictConfig, OmegaConf

from hawk.classes import ClassSpec, get_class, parse_classes
from hawk.embed import Embedder, create_embedder
from hawk.spectrogram import SpecSettings

ROOT = Path(__file__).resolve().parent.parent
PARAMS = "params"


def parser(doc: str | None) -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(description=doc, formatter_class=argparse.RawDescriptionHelpFormatter,
                                epilog="Overrides use Hydra syntax, e.g. audio.offset=3 download.max_per_class=50.")
    p.add_argument("overrides", nargs="*", help="key=value settings on top of params.yaml")
    p.add_argument("--cfg", action="store_true", help="print the composed config and exit")
    return p


def load_config(args: argparse.Namespace) -> DictConfig:
    """params.yaml from the current project (the working directory, as DVC runs stages) plus overrides."""
    project = Path.cwd()
    if not (project / f"{PARAMS}.yaml").exists():
        sys.exit(f"error: no {PARAMS}.yaml in {project}; run stages from the project root")
    with initialize_config_dir(config_dir=str(project), version_base="1.3"):
        cfg = compose(config_name=PARAMS, overrides=list(args.overrides))
    if args.cfg:
        print(OmegaConf.to_yaml(cfg))
        sys.exit(0)
    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(name)s: %(message)s")
    return cfg


def class_stage(doc: str | None) -> tuple[DictConfig, ClassSpec]:
    """Start-up of a per-class stage (``--code CODE``): the config and that class's validated spec."""
    p = parser(doc)
    p.add_argument("--code", required=True, help="class code, as in the classes config")
    args = p.parse_args()
    cfg = load_config(args)
    return cfg, get_class(OmegaConf.to_container(cfg.classes, resolve=True), args.code)


def main_project() -> Path:
    """The project a stage belongs to. DVC runs queued and temp experiments in a copy of the project and
    names the original in ``DVC_ROOT``; tracking stores (MLflow, TensorBoard) belong to the original,
    so every experiment lands in the one ``mlflow ui``."""
    return Path(os.environ.get("DVC_ROOT") or Path.cwd()).resolve()


def tracking_path(value: str) -> str:
    """A relative ``sqlite:///file`` URI or folder, anchored in :func:`main_project`."""
    root = main_project()
    if value.startswith("sqlite:///") and not value.startswith("sqlite:////"):
        return f"sqlite:///{root / value[len('sqlite:///'):]}"
    if "://" not in value and not Path(value).is_absolute():
        return str(root / value)
    return value


def spec_settings(cfg: DictConfig) -> SpecSettings:
    return SpecSettings.from_mapping(OmegaConf.to_container(cfg.audio, resolve=True))


def embedder(cfg: DictConfig) -> Embedder:
    """The configured embedder (``embedder.name`` plus its options, less the stage-level ones)."""
    opts = OmegaConf.to_container(cfg.embedder, resolve=True)
    name = opts.pop("name")
    opts.pop("progress", None)
    return create_embedder(name, **opts)


def class_list(cfg: DictConfig) -> list[ClassSpec]:
    return parse_classes(OmegaConf.to_container(cfg.classes, resolve=True))
