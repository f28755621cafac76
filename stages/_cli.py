"""Shared start-up of the stage entry points: arguments, the composed config, logging, errors.

Stages read ``params.yaml`` (the composition of ``conf/``, which ``dvc exp run`` rewrites) through
Hydra's compose API, so ``key=value`` overrides work by hand exactly as ``-S key=value`` does in DVC.
Expected errors (bad config, bad input, a refused key) end a stage with one ``error: ...`` line and
exit status 2; set ``HAWK_DEBUG=1`` to see the traceback.
"""

from __future__ import annotations

import argparse
import difflib
import functools
import logging
import os
import sys
import tempfile
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from hydra import compose, initialize_config_dir
from hydra.errors import HydraException
from omegaconf import DictConfig, OmegaConf
from omegaconf.errors import OmegaConfBaseException

from hawk.classes import ClassSpec, get_class, parse_classes
from hawk.embed import Embedder, create_embedder
from hawk.errors import HawkError
from hawk.ray_engine import RayEngine, engine_from_config
from hawk.schema import validate
from hawk.spectrogram import SpecSettings

ROOT = Path(__file__).resolve().parent.parent
PARAMS = "params"


def parser(doc: str | None) -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(description=doc, formatter_class=argparse.RawDescriptionHelpFormatter,
                                epilog="Overrides use Hydra syntax, e.g. audio.offset=3 download.max_per_class=50; a "
                                       "config group's option by name, e.g. engine=ray or embedder=checkpoint.")
    p.add_argument("overrides", nargs="*", help="key=value settings on top of params.yaml")
    p.add_argument("--cfg", action="store_true", help="print the composed config and exit")
    return p


EXPECTED_ERRORS = (HawkError, HydraException, OmegaConfBaseException)


def run(main: Callable[[], None]) -> None:
    """Run a stage's ``main``; an expected error becomes one ``error: ...`` line and exit status 2."""
    try:
        main()
    except EXPECTED_ERRORS as e:
        if os.environ.get("HAWK_DEBUG"):
            raise
        print(f"error: {one_line(e)}", file=sys.stderr)
        sys.exit(2)


def one_line(e: BaseException) -> str:
    return " ".join(str(e).split()) or type(e).__name__


def compose_config(config_dir: Path, name: str, overrides: list[str]) -> DictConfig:
    """Hydra's compose, with a mistyped override reported by key, with the nearest known keys."""
    with initialize_config_dir(config_dir=str(config_dir), version_base="1.3"):
        try:
            return compose(config_name=name, overrides=overrides)
        except HydraException as e:
            base = compose(config_name=name)
            hint = unknown_override_hint(base, overrides)
            raise HawkError(hint or one_line(e)) from e


def unknown_override_hint(cfg: DictConfig, overrides: list[str]) -> str:
    """'unknown setting ...; nearest known keys: ...' for the first override whose key ``cfg`` lacks."""
    known = _key_paths(OmegaConf.to_container(cfg, resolve=False))
    for item in overrides:
        key = item.split("=", 1)[0].lstrip("~")
        if key.startswith("+") or key in known or "/" in key:  # appends and group choices are Hydra's to judge
            continue
        near = difflib.get_close_matches(key, sorted(known), n=3, cutoff=0.6)
        hint = f"; nearest known keys: {', '.join(near)}" if near else ""
        return f"unknown setting {key!r} in override {item!r}{hint} (params.yaml lists every key)"
    return ""


def _key_paths(node: object, prefix: str = "") -> set[str]:
    keys: set[str] = set()
    if isinstance(node, dict):
        for k, v in node.items():
            path = f"{prefix}{k}"
            keys.add(path)
            keys |= _key_paths(v, path + ".")
    return keys


def load_config(args: argparse.Namespace) -> DictConfig:
    """params.yaml from the current project (the working directory, as DVC runs stages) plus overrides."""
    project = Path.cwd()
    if not (project / f"{PARAMS}.yaml").exists():
        raise HawkError(f"no {PARAMS}.yaml in {project}; run stages from the project root")
    overrides = list(args.overrides)
    choices = group_choices(project / "conf", overrides)
    if choices:
        cfg = _compose_with_choices(project, choices, [o for o in overrides if o not in choices])
    else:
        cfg = compose_config(project, PARAMS, overrides)
    validate(OmegaConf.to_container(cfg, resolve=True))
    if args.cfg:
        print(OmegaConf.to_yaml(cfg))
        sys.exit(0)
    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(name)s: %(message)s")
    return cfg


def group_choices(conf: Path, overrides: list[str]) -> list[str]:
    """The overrides that choose a config group's option (``engine=ray``, ``embedder=checkpoint``), as
    ``dvc exp run -S`` does: a key without dots naming a folder of ``conf/`` that has that option."""
    out = []
    for item in overrides:
        key, sep, value = item.partition("=")
        if sep and key.isidentifier() and (conf / key / f"{value}.yaml").is_file():
            out.append(item)
    return out


def _compose_with_choices(project: Path, choices: list[str], rest: list[str]) -> DictConfig:
    """params.yaml with each chosen group's node replaced by that option's file, then ``rest`` on top."""
    base = OmegaConf.load(project / f"{PARAMS}.yaml")
    for item in choices:
        base.pop(item.split("=", 1)[0], None)
    with tempfile.TemporaryDirectory() as tmp:
        OmegaConf.save(base, Path(tmp) / f"{PARAMS}.yaml")
        search = f"hydra.searchpath=[file://{project / 'conf'}]"
        return compose_config(Path(tmp), PARAMS, [search] + [f"+{c}" for c in choices] + rest)


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


def embedder_factory(cfg: DictConfig) -> Callable[[], Embedder]:
    """What makes the configured embedder (``embedder.name`` plus its options, less the stage-level
    ones): called here, or once in each actor of a Ray cluster."""
    opts = embedder_description(cfg, {})["config"]
    return functools.partial(create_embedder, opts.pop("name"), **opts)


def embedder(cfg: DictConfig) -> Embedder:
    return embedder_factory(cfg)()


@contextmanager
def engine(cfg: DictConfig) -> Iterator[RayEngine | None]:
    """The configured engine, started for the block: None for ``engine=local``, else a running
    :class:`hawk.ray_engine.RayEngine` (joined or started, and shut down after if started here)."""
    eng = engine_from_config(OmegaConf.to_container(cfg.engine, resolve=True))
    if eng is None:
        yield None
        return
    with eng:
        yield eng


def class_list(cfg: DictConfig) -> list[ClassSpec]:
    return parse_classes(OmegaConf.to_container(cfg.classes, resolve=True))


def trains_head(cfg: DictConfig) -> bool:
    """The train stage trains an embedding head (alone, beside the CNN, or as the CNN's teacher with
    train.distill): every class is embedded and the training set carries each window's vector."""
    return cfg.train.model_name == "embed_head" or bool(cfg.train.head.enabled) or float(cfg.train.distill) > 0


def embedder_description(cfg: DictConfig, identity: dict[str, Any]) -> dict[str, Any]:
    """What a head's checkpoint records to make its embedder again at inference: the configured options
    (less stage-level ones) and the identity of the embeddings it was trained on."""
    opts = OmegaConf.to_container(cfg.embedder, resolve=True)
    opts.pop("progress", None)
    return {"config": opts, "identity": identity}


def curated_by_model(cfg: DictConfig) -> list[str]:
    """The classes select curates by the model's scores: unattended curation by model is on and the
    class has no search queries and is not kept whole. The embed and score stages run for them."""
    un = cfg.select.unattended
    if not (un.enabled and un.by == "model"):
        return []
    return [c.code for c in class_list(cfg) if not cfg.search.queries.get(c.code) and c.code not in un.keep_all]
