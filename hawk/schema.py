"""The typed schema of hawk's whole configuration: every key, its type and what values it allows.

Stages check the composed config against it before any work starts, so a mistyped or out-of-range
setting ends in one line that names the key, the value and what is allowed, not in a traceback an
hour later (or, worse, in a run that silently does nothing). A new setting is declared here, beside
its group; ``tests/test_config.py`` fails when this schema and ``params.yaml`` list different keys.
Defaults live in ``conf/``, not here: this says only what is valid.

Each group is a dataclass whose fields are the group's keys; the type hint is the type, and
:func:`setting` adds a range or a list of choices. A group with alternatives (``embedder``, ``engine``)
is a union of dataclasses told apart by their ``name``.
"""

from __future__ import annotations

import math
import types
import typing
from collections.abc import Mapping
from dataclasses import dataclass, field, fields, is_dataclass
from typing import Any, Literal, Union

from hawk.errors import HawkError


class ConfigError(HawkError, ValueError):
    """A setting of the wrong type or out of range, or a key the schema does not know."""


def setting(*, gt: float | None = None, ge: float | None = None, le: float | None = None,
            choices: tuple[Any, ...] = (), auto: bool = False) -> Any:
    """A field's constraints: ``gt``/``ge``/``le`` bounds, allowed ``choices``, and whether the
    string ``auto`` is accepted besides the typed values."""
    return field(metadata={"gt": gt, "ge": ge, "le": le, "choices": choices, "auto": auto})


Str = str
Free = Any  # validated elsewhere (classes by hawk.classes, search queries by the search stage)


@dataclass
class Paths:
    data: Str
    recordings: Str
    db: Str
    embeddings: Str
    dedup: Str
    score: Str
    search: Str
    curation: Str
    select: Str
    dropped: Str
    doubt: Str
    field_queue: Str
    field: Str
    train_db: Str
    specs: Str
    ckpt: Str
    labels: Str
    metrics: Str
    images: Str
    test: Str
    classes_txt: Str


@dataclass
class Audio:
    segment_len: float = setting(gt=0)
    sample_rate: int = setting(gt=0)
    spec_height: int = setting(ge=1)
    spec_width: int = setting(ge=1)
    win_length: int = setting(ge=1)
    n_fft: int = setting(ge=1)
    hop_length: int = setting(ge=1)
    min_freq: float = setting(ge=0)
    max_freq: float = setting(gt=0)
    mel_scale: bool = setting()
    power: float = setting(gt=0)
    offset: float = setting(gt=0)  # seconds from one segment's start to the next
    check_seconds: float = setting(ge=0)
    block_seconds: float = setting(gt=0)
    compress_level: int = setting(ge=0, le=9)


@dataclass
class XenoCanto:
    base_url: Str
    per_page: int = setting(ge=1)
    qualities: list[str] = setting()
    exclude_licenses: list[str] = setting()


@dataclass
class INat:
    base_url: Str
    per_page: int = setting(ge=1)
    quality_grade: str | None = setting()
    exclude_licenses: list[str] = setting()


@dataclass
class DemoSource:
    recordings: int = setting(ge=0)
    seed: int = setting()


@dataclass
class Download:
    max_per_class: int = setting(ge=0)
    allow_empty: bool = setting()
    min_interval: float = setting(ge=0)
    retries: int = setting(ge=0)
    backoff: float = setting(ge=0)
    timeout: float = setting(gt=0)
    xeno_canto: XenoCanto = setting()
    inat: INat = setting()
    demo: DemoSource = setting()


@dataclass
class Extract:
    workers: int = setting(ge=0)
    category: Str = setting()
    progress: bool = setting()


@dataclass
class BirdNET:
    name: Literal["birdnet"]
    threads: int = setting(ge=0)
    batch_size: int = setting(ge=1)
    runtime: str = setting(choices=("auto", "litert"))  # hawk.embed.birdnet.RUNTIMES
    progress: bool = setting()


@dataclass
class CheckpointEmbedder:
    name: Literal["checkpoint"]
    path: Str
    batch_size: int = setting(ge=1)
    device: Str = setting()
    progress: bool = setting()


@dataclass
class Dedup:
    mode: str = setting(choices=("report", "remove"))
    max_distance: float = setting(gt=0)
    max_trim: float = setting(ge=0)
    min_overlap: float = setting(gt=0, le=1)
    neighbours: int = setting(ge=0)
    bands: int = setting(ge=1)
    pool: int = setting(ge=1)
    summary_below: float = setting(gt=0)
    progress: bool = setting()


@dataclass
class Search:
    dist: float = setting(gt=0)
    num: int = setting(ge=1)
    embed_all: bool = setting()
    queries: Free = setting()


@dataclass
class Score:
    folds: int = setting(ge=2)
    rounds: int = setting(ge=1)
    relabel_below: float = setting(ge=0, le=1)
    recording_quantile: float = setting(ge=0, le=1)
    c: float = setting(gt=0)
    seed: int = setting()


@dataclass
class Doubt:
    size: int = setting(ge=1)
    boundary: float = setting(gt=0, le=1)
    field_recordings: int = setting(ge=1)


@dataclass
class Unattended:
    enabled: bool = setting()
    by: str = setting(choices=("model", "activity"))
    min_score: float = setting(ge=0, le=1)
    min_activity_db: float = setting()
    keep_all: list[str] = setting()


@dataclass
class Select:
    auto_keep: bool = setting()
    max_distance: float = setting(gt=0)
    unattended: Unattended = setting()
    progress: bool = setting()


@dataclass
class Pickle:
    max_per_class: int | None = setting(ge=1)
    seed: int = setting()
    progress: bool = setting()


@dataclass
class Augment:
    enabled: bool = setting()
    prob_merge: float = setting(ge=0, le=1)
    prob_real_noise: float = setting(ge=0, le=1)
    prob_speckle: float = setting(ge=0, le=1)
    prob_fade1: float = setting(ge=0, le=1)
    prob_fade2: float = setting(ge=0, le=1)
    prob_shift: float = setting(ge=0, le=1)
    max_shift: int = setting(ge=0)
    min_fade1: float = setting(ge=0, le=1)
    max_fade1: float = setting(ge=0, le=1)
    min_fade2: float = setting(ge=0, le=1)
    max_fade2: float = setting(ge=0, le=1)
    speckle_variance: float = setting(ge=0)
    min_noise: float = setting(ge=0)
    max_noise: float = setting(ge=0)


@dataclass
class Head:
    enabled: bool = setting()
    hidden: int = setting(ge=0)
    dropout: float = setting(ge=0, le=0.9)
    steps: int = setting(ge=1)
    calibrate: bool = setting()
    refit: bool = setting()
    lr: float = setting(gt=0)
    weight_decay: float = setting(ge=0)
    verdict_weight: float = setting(ge=0)
    dropped_weight: float = setting(ge=0)


@dataclass
class Train:
    model_name: Str
    num_epochs: int = setting(ge=1)
    batch_size: int = setting(ge=1)
    lr: float = setting(gt=0)
    weight_decay: float = setting(ge=0)
    optimizer: Str = setting()
    label_smoothing: float = setting(ge=0, le=1)
    use_class_weights: bool = setting()
    class_weight_power: float = setting(ge=0)
    drop_rate: float = setting(ge=0, le=1)
    val_portion: float = setting(ge=0, le=0.9)
    num_folds: int = setting(ge=1)
    save_last_n: int = setting(ge=1)
    average: bool = setting()
    seed: int = setting()
    num_workers: int = setting(ge=0, auto=True)
    load_ckpt_path: str | None = setting()
    update_classifier: bool = setting()
    freeze_backbone: bool = setting()
    bn_recalibrate_batches: int = setting(ge=0)
    distill: float = setting(ge=0, le=1)
    augment: Augment = setting()
    head: Head = setting()


@dataclass
class Trainer:
    accelerator: Str
    devices: int | list[int] = setting(ge=1, auto=True)
    num_nodes: int = setting(ge=1)
    strategy: Str = setting()
    precision: str | int = setting()
    deterministic: bool = setting()
    progress: bool = setting()
    limit_train_batches: float = setting(gt=0)


@dataclass
class Tracking:
    mlflow_uri: str | None
    experiment: Str
    tensorboard_dir: str | None
    run_name: str | None
    preset: str | None


@dataclass
class Calibration:
    a: float
    b: float


@dataclass
class Infer:
    input: Str
    min_score: float = setting(ge=0, le=1)
    overlap: float = setting(ge=0)
    merge: bool = setting()
    ignore: list[str] = setting()
    calibration: Calibration = setting()
    suffix: Str = setting()
    raven: bool = setting()
    batch_size: int = setting(ge=1)
    prefetch: int = setting(ge=0)
    device: Str = setting()
    runtime: str = setting(choices=("auto", "openvino", "onnxruntime", "torch"))
    resume: bool = setting()
    commit_every: int = setting(ge=1)
    progress: bool = setting()


@dataclass
class Test:
    recordings: Str
    annotations: Str
    threshold: float = setting(ge=0, le=1)
    min_overlap: float = setting(ge=0, le=1)
    progress: bool = setting()


@dataclass
class Testset:
    kind: str = setting(choices=("demo", "local"))
    path: str | None = setting()
    soundscapes: int = setting(ge=1)
    seconds: float = setting(gt=0)
    seed: int = setting()
    calls: dict[str, str] = setting()


@dataclass
class LocalEngine:
    name: Literal["local"]


@dataclass
class RayEngine:
    name: Literal["ray"]
    address: Str
    num_cpus: float | None = setting(gt=0)
    cpus_per_task: float = setting(gt=0)
    cpus_per_actor: float = setting(gt=0)
    gpus_per_actor: float = setting(ge=0, auto=True)
    concurrency: int | None = setting(ge=1)
    batch_size: int = setting(ge=1)
    max_retries: int = setting(ge=0)
    part_seconds: float | None = setting(gt=0)


@dataclass
class Config:
    paths: Paths
    audio: Audio
    classes: Free
    download: Download
    extract: Extract
    embedder: Union[BirdNET, CheckpointEmbedder]
    dedup: Dedup
    search: Search
    score: Score
    select: Select
    pickle: Pickle
    train: Train
    trainer: Trainer
    tracking: Tracking
    infer: Infer
    test: Test
    doubt: Doubt
    testset: Testset
    engine: Union[LocalEngine, RayEngine]


def validate(cfg: Mapping[str, Any]) -> None:
    """Raise :class:`ConfigError` for the first setting that the schema refuses (a resolved config)."""
    _check_node(Config, cfg, "")


def schema_keys(cls: type = Config, prefix: str = "") -> set[str]:
    """Every key path the schema declares (for the drift test); a union contributes all its options'."""
    keys: set[str] = set()
    for f, hint in _hints(cls):
        path = f"{prefix}{f.name}"
        keys.add(path)
        for option in _dataclasses_of(hint):
            keys |= schema_keys(option, path + ".")
    return keys


def _hints(cls: type) -> list[tuple[Any, Any]]:
    hints = typing.get_type_hints(cls)
    return [(f, hints[f.name]) for f in fields(cls)]


def _dataclasses_of(hint: Any) -> list[type]:
    if is_dataclass(hint):
        return [hint]
    return [a for a in typing.get_args(hint) if is_dataclass(a)] if _is_union(hint) else []


def _is_union(hint: Any) -> bool:
    return typing.get_origin(hint) in (Union, types.UnionType)


def _check_node(cls: type, node: Any, prefix: str) -> None:
    where = prefix.rstrip(".") or "the config"
    if not isinstance(node, Mapping):
        raise ConfigError(f"setting {where}: expected a group of settings, got {node!r}")
    declared = _hints(cls)
    names = {f.name for f, _ in declared}
    unknown = sorted(set(map(str, node)) - names)
    if unknown:
        raise ConfigError(f"unknown setting {prefix}{unknown[0]} (known in {where}: {', '.join(sorted(names))})")
    for f, hint in declared:
        path = f"{prefix}{f.name}"
        if f.name not in node:
            raise ConfigError(f"setting {path} is missing (params.yaml lists every key; run 'make params')")
        _check_value(hint, node[f.name], path, f.metadata)


def _check_value(hint: Any, value: Any, path: str, meta: Mapping[str, Any]) -> None:
    options = _dataclasses_of(hint)
    if len(options) > 1:  # alternatives told apart by name
        by_name = {typing.get_args(typing.get_type_hints(o)["name"])[0]: o for o in options}
        name = value.get("name") if isinstance(value, Mapping) else None
        if not isinstance(name, str) or name not in by_name:
            raise ConfigError(f"setting {path}.name={name!r}: must be one of {', '.join(map(repr, by_name))}")
        return _check_node(by_name[name], value, path + ".")
    if options:
        return _check_node(options[0], value, path + ".")
    if hint is Any:
        return
    if meta.get("auto") and value == "auto":
        return
    if not _is_type(hint, value):
        allowed = _describe(hint) + (" or 'auto'" if meta.get("auto") else "")
        raise ConfigError(f"setting {path}={value!r}: must be {allowed}")
    if isinstance(value, (int, float)) and not isinstance(value, bool):
        bounds = [(meta.get("gt"), "> ", value > (meta.get("gt") or 0)),
                  (meta.get("ge"), ">= ", value >= (meta.get("ge") or 0)),
                  (meta.get("le"), "<= ", value <= (meta.get("le") or 0))]
        for bound, op, ok in bounds:
            if bound is not None and not ok:
                raise ConfigError(f"setting {path}={value!r}: must be {_describe(hint)} {op}{bound:g}")
    if meta.get("choices") and value not in meta["choices"]:
        raise ConfigError(f"setting {path}={value!r}: must be one of {', '.join(map(repr, meta['choices']))}")


def _is_type(hint: Any, value: Any) -> bool:
    origin, args = typing.get_origin(hint), typing.get_args(hint)
    if _is_union(hint):
        return any(_is_type(a, value) for a in args)
    if origin is Literal:
        return value in args
    if origin is list:
        return isinstance(value, list) and all(_is_type(args[0], v) for v in value)
    if origin is dict:
        return isinstance(value, Mapping) and all(_is_type(args[1], v) for v in value.values())
    if hint is type(None):
        return value is None
    if hint is bool:
        return isinstance(value, bool)
    if hint is int:
        return isinstance(value, int) and not isinstance(value, bool)
    if hint is float:
        return isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value)
    return isinstance(value, hint)


def _describe(hint: Any) -> str:
    if _is_union(hint):
        return " or ".join(_describe(a) for a in typing.get_args(hint))
    origin, args = typing.get_origin(hint), typing.get_args(hint)
    if origin is list:
        return f"a list of {_describe(args[0])}s"
    if origin is dict:
        return f"a mapping to {_describe(args[1])}s"
    return {int: "a whole number", float: "a number", bool: "true or false", str: "a text",
            type(None): "null"}.get(hint, str(hint))
