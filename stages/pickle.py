"""pickle: the training set, data/specs/ (the seed's pickle_db.py), from data/train.db and classes.txt.

classes.txt says which classes to train and in what order. Each spectrogram keeps its recording id,
offset, class and source, and a split group (its recording, or its duplicate group from dedup). The
3-s clips you confirmed in your own recordings (data/field/<CODE>/, the field queue's yes on the
review page) are rows of their class too (source field), made here, so a round of field verdicts
reruns pickle and what follows, not each class's download, extract, embed and search. The
format runs no code when loaded and training reads it from disk, so a set larger than RAM trains.
A listed class with no spectrograms is an error naming it. When an embedding head is trained
(train.model_name=embed_head or train.head.enabled), each row's embedding from the embed stage is
stored beside it (vectors.npy), and so is every window you said no to (negatives.npz: a rejected image
in data/curation/<CODE>/rejected/, a rejected field clip in data/field/<CODE>/rejected/) and every
window curation by the model dropped (data/dropped/<CODE>/dropped.csv, unless you restored it), which
the head trains on as a negative of that class only (hawk/negatives.py; train.head.verdict_weight and
train.head.dropped_weight weigh them).

    python -m stages.pickle [pickle.max_per_class=500]
"""

from __future__ import annotations

import functools
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np

from hawk.classes import read_classes_txt
from hawk.db import SpecDB
from hawk.dedup import read_exclude, read_groups
from hawk.embed.store import check_same_embedder, vectors_by_window
from hawk.negatives import CURATION, DROPPED, FIELD, Negatives, collect_negatives
from hawk.specset import build_specset, field_clips
from stages._cli import embedder_description, embedder_factory, load_config, parser, run, trains_head


def main() -> None:
    cfg = load_config(parser(__doc__).parse_args())
    classes = read_classes_txt(cfg.paths.classes_txt)
    codes = [code for _, code in classes]
    with SpecDB(Path(cfg.paths.train_db)) as db:
        spec = db.get_meta("spec_settings") or {}
    clips, unusable = field_clips(Path(cfg.paths.field), codes, spec) if spec else ([], [])
    vectors = negatives = None
    if trains_head(cfg):
        by_code, idents = {}, {}
        for _, code in classes:
            emb = Path(cfg.paths.embeddings) / f"{code}.npz"
            by_code[code], idents[str(emb)] = vectors_by_window(Path(cfg.paths.db) / f"{code}.db", emb)
        vectors = by_code, embedder_description(cfg, check_same_embedder(idents))
        embed = clip_embedder(cfg, vectors[1]["identity"])
        negatives = said_no(cfg, codes, by_code, vectors[1]["identity"], embed)
        for clip, v in zip(clips, embed([c.path for c in clips]) if clips else []):
            clip.vector = v
    meta = build_specset(Path(cfg.paths.train_db), classes, Path(cfg.paths.specs), cfg.pickle.max_per_class,
                         int(cfg.pickle.seed), read_groups(Path(cfg.paths.dedup) / "duplicates.csv"),
                         bool(cfg.pickle.progress), vectors, negatives, clips)
    counts = ", ".join(f"{c} {n}" for c, n in meta["per_class"].items())
    extra = f"; {meta['vectors_missing']} without an embedding" if meta.get("vectors_missing") else ""
    print(f"pickle: {meta['count']} spectrograms of {len(classes)} classes ({counts}) in {cfg.paths.specs}{extra}")
    if meta["field_clips"]:
        print(f"pickle: {sum(meta['field_clips'].values())} clips you confirmed in your own recordings "
              f"({', '.join(f'{c} {n}' for c, n in meta['field_clips'].items())})")
    for what, why in unusable:
        print(f"pickle: skipped your yes on {cfg.paths.field}/{what}: {why}")
    for counts, what in ((negatives.counts((CURATION, FIELD)), "you said no to"),
                         (negatives.counts((DROPPED,)), "curation by the model dropped")) if negatives else ():
        if counts:
            print(f"pickle: {sum(counts.values())} windows {what}, negatives of their class for the head "
                  f"({', '.join(f'{c} {n}' for c, n in counts.items())})")
    for what, why in negatives.unusable if negatives else []:
        print(f"pickle: skipped your no on {what}: {why}")


def clip_embedder(cfg: Any, identity: dict) -> Callable[[list[Path]], list[np.ndarray]]:
    """Embeds field clips (3 s each) with the embedder that made the others, made on first use and
    checked against the embed stage's identity; one for your yes's and no's alike."""
    make = functools.cache(lambda: embedder_factory(cfg)())

    def embed(paths: list[Path]) -> list[np.ndarray]:
        embedder = make()
        check_same_embedder({"the embed stage": identity, "the configured embedder": embedder.identity()})
        return [embedder.embed_file(p, [0.0])[0] for p in paths]

    return embed


def said_no(cfg, codes: list[str], by_code: dict, identity: dict,
            embed_clips: Callable[[list[Path]], list[np.ndarray]]) -> Negatives:
    """Your "no" verdicts as vectors."""
    stored = {}
    for code in codes:
        with SpecDB(Path(cfg.paths.db) / f"{code}.db") as db:
            stored[code] = db.offsets()
    exclude: dict[str, set[str]] = {}
    for code, f in read_exclude(Path(cfg.paths.dedup) / "exclude.csv"):
        exclude.setdefault(code, set()).add(f)
    return collect_negatives(codes, Path(cfg.paths.curation), Path(cfg.paths.field), stored, by_code,
                             int(identity["dim"]), embed_clips, exclude, Path(cfg.paths.dropped))


if __name__ == "__main__":
    run(main)
