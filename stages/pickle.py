"""pickle: the training set, data/specs/ (the seed's pickle_db.py), from data/train.db and classes.txt.

classes.txt says which classes to train and in what order. Each spectrogram keeps its recording id,
offset, class and source, and a split group (its recording, or its duplicate group from dedup). The
format runs no code when loaded and training reads it from disk, so a set larger than RAM trains.
A listed class with no spectrograms is an error naming it. When an embedding head is trained
(train.model_name=embed_head or train.head.enabled), each row's embedding from the embed stage is
stored beside it (vectors.npy).

    python -m stages.pickle [pickle.max_per_class=500]
"""

from __future__ import annotations

from pathlib import Path

from hawk.classes import read_classes_txt
from hawk.dedup import read_groups
from hawk.specset import build_specset
from hawk.embed.store import check_same_embedder, vectors_by_window
from stages._cli import embedder_description, load_config, parser, run, trains_head


def main() -> None:
    cfg = load_config(parser(__doc__).parse_args())
    classes = read_classes_txt(cfg.paths.classes_txt)
    vectors = None
    if trains_head(cfg):
        by_code, idents = {}, {}
        for _, code in classes:
            emb = Path(cfg.paths.embeddings) / f"{code}.npz"
            by_code[code], idents[str(emb)] = vectors_by_window(Path(cfg.paths.db) / f"{code}.db", emb)
        vectors = by_code, embedder_description(cfg, check_same_embedder(idents))
    meta = build_specset(Path(cfg.paths.train_db), classes, Path(cfg.paths.specs), cfg.pickle.max_per_class,
                         int(cfg.pickle.seed), read_groups(Path(cfg.paths.dedup) / "duplicates.csv"),
                         bool(cfg.pickle.progress), vectors)
    counts = ", ".join(f"{c} {n}" for c, n in meta["per_class"].items())
    extra = f"; {meta['vectors_missing']} without an embedding" if meta.get("vectors_missing") else ""
    print(f"pickle: {meta['count']} spectrograms of {len(classes)} classes ({counts}) in {cfg.paths.specs}{extra}")


if __name__ == "__main__":
    run(main)
