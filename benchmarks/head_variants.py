"""Embedding-head variants on a finished quality project: which head recipe to make the default.

Takes a project that `benchmarks/quality.py` left in ``--work`` (its training set with every window's
embedding, its test soundscapes and annotations), trains each variant of ``train.head`` on that same
training set, scores the soundscapes from embeddings computed once, and prints per-sound macro AP
and per-class AP. Curation, embedding and the test are exactly the pipeline's; only the head changes,
so a variant takes seconds, not a whole `dvc repro`. Run it on more than one kit: a recipe that wins
on one seed is a guess.

    python benchmarks/quality.py --work /tmp/q-rec1 --seed 1 --set dedup.mode=remove
    python benchmarks/head_variants.py --work /tmp/q-rec1 --name head-variants-recorded-seed1 \\
        --variant hidden=0,refit=false --variant hidden=512,dropout=0.3

Each ``--variant`` is ``key=value`` pairs of ``train.head`` (unset keys: hawk's defaults); ``seeds``
runs it once per training seed (``seeds=0;1``) and reports their mean.
"""

from __future__ import annotations

import argparse
import sys
from dataclasses import fields
from pathlib import Path

import numpy as np
import torch
from omegaconf import OmegaConf

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "benchmarks"))

from hawk.embed_head import HeadSettings  # noqa: E402
from hawk.evaluate import build_table, compute_metrics, match_annotations, read_annotations  # noqa: E402
from hawk.infer import Ensemble, find_recordings, score_files  # noqa: E402
from hawk.specset import SpecSet  # noqa: E402
from hawk.training.data import make_splits  # noqa: E402
from hawk.training.head import fit_head  # noqa: E402
from hawk.training.module import class_weights  # noqa: E402
from hawk.training.run import TrainSettings  # noqa: E402
from results import record  # noqa: E402


def parse_variant(text: str) -> tuple[HeadSettings, list[int]]:
    """``hidden=512,dropout=0.3,seeds=0;1`` -> (settings, training seeds)."""
    kinds = {f.name: f.type for f in fields(HeadSettings)}
    values, seeds = {}, [0]
    for item in filter(None, text.split(",")):
        key, _, value = item.partition("=")
        if key == "seeds":
            seeds = [int(v) for v in value.split(";")]
        elif key not in kinds:
            raise SystemExit(f"--variant {text}: {key} is not a train.head setting ({', '.join(kinds)})")
        else:
            values[key] = value.lower() == "true" if kinds[key] in (bool, "bool") else float(value) \
                if kinds[key] in (float, "float") else int(value)
    return HeadSettings(**values), seeds


class Soundscapes:
    """The project's test soundscapes, embedded once, scored by any list of heads."""

    def __init__(self, project: Path):
        cfg = OmegaConf.load(project / "params.yaml")
        self.ensemble = Ensemble.load(project / "models" / "ckpt")
        if self.ensemble.embedder is None:
            raise SystemExit(f"{project}: its models hold no embedding head")
        self.ensemble.models = []  # the heads alone
        cache: dict[tuple[str, tuple[float, ...]], np.ndarray] = {}
        embed = self.ensemble.embedder.embed_file

        def cached(path, offsets, batch_size=64):
            key = (str(path), tuple(offsets))
            if key not in cache:
                cache[key] = embed(path, offsets, batch_size)
            return cache[key]

        self.ensemble.embedder.embed_file = cached
        ann = Path(str(cfg.test.annotations))
        ann = ann if ann.is_absolute() else project / ann
        self.kind, rows = read_annotations(ann)
        self.files = find_recordings(project / str(cfg.test.recordings))
        self.rows, _ = match_annotations(ann, rows, self.files, self.ensemble.codes)
        ignore = set(cfg.infer.ignore)
        named = {r["species"] for r in self.rows}
        self.columns = [k for k, c in enumerate(self.ensemble.codes) if c in named and c not in ignore]

    def score(self, heads: list[torch.nn.Module]) -> dict:
        from sklearn.metrics import average_precision_score

        self.ensemble.heads = heads
        run = score_files(self.files, self.ensemble, 0.0)
        t = build_table(self.kind, self.rows, run.files, self.ensemble.codes, self.ensemble.settings.segment_len)
        m = compute_metrics(t.scores, t.truth, self.columns, 0.8)
        per = {self.ensemble.codes[k]: round(float(average_precision_score(t.truth[:, k], t.scores[:, k])), 3)
               for k in self.columns}
        return {"per_sound": m["macro_ap"], "precision_at_0.8": m["precision"], "recall_at_0.8": m["recall"],
                "per_class_ap": per}


def train_variant(specs: SpecSet, settings: HeadSettings, seed: int) -> torch.nn.Module:
    """The train stage's single-fold head (hawk/training/head.py, train's defaults otherwise)."""
    s = TrainSettings()
    x, labels = specs.vectors(), specs.labels
    has = np.linalg.norm(x, axis=1) > 0
    (train_idx, val_idx), = make_splits(specs.groups, labels, s.val_portion, 1, seed)
    train_idx, val_idx = train_idx[has[train_idx]], val_idx[has[val_idx]]
    weights = class_weights(labels[has], len(specs.class_codes), s.class_weight_power)
    return fit_head(x, labels, train_idx, val_idx, np.flatnonzero(has) if settings.refit else None,
                    len(specs.class_codes), weights, settings, s.label_smoothing, seed).model


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--work", type=Path, required=True, help="the --work folder of a finished quality.py run")
    p.add_argument("--variant", action="append", default=[], help="train.head settings, e.g. hidden=0,refit=false")
    p.add_argument("--name", default="head-variants", help="benchmarks/results/<name>.json")
    args = p.parse_args()
    project = args.work.resolve() / "project"
    specs = SpecSet.open(project / "data" / "specs")
    scapes = Soundscapes(project)
    figures = {"kit": next((k.name for k in args.work.glob("kit-*")), "")}
    for text in args.variant or [""]:
        settings, seeds = parse_variant(text)
        runs = [scapes.score([train_variant(specs, settings, seed)]) for seed in seeds]
        mean = float(np.mean([r["per_sound"] for r in runs]))
        figures[text or "defaults"] = {"per_sound": round(mean, 4), "per_seed": [round(r["per_sound"], 4) for r in runs],
                                       "precision_at_0.8": runs[0]["precision_at_0.8"],
                                       "recall_at_0.8": runs[0]["recall_at_0.8"], "per_class_ap": runs[0]["per_class_ap"]}
        print(f"{text or 'defaults':40s} per-sound macro AP {mean:.3f} {figures[text or 'defaults']['per_seed']} "
              f"{runs[0]['per_class_ap']}", flush=True)
    record(args.name, f"Embedding-head variants on {figures['kit']}", figures,
           command=" ".join(["python benchmarks/head_variants.py", f"--work {args.work}",
                             *(f"--variant {v}" for v in args.variant)]))


if __name__ == "__main__":
    main()
