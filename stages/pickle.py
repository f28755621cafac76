"""pickle: the training set, data/specs/ (the seed's pickle_db.py), from data/train.db and classes.txt.

classes.txt says which classes to train and in what order. Each spectrogram keeps its recording id,
offset, class and source, and a split group (its recording, or its duplicate group from dedup). The
format runs no code when loaded and training reads it from disk, so a set larger than RAM trains.
A listed class with no spectrograms is an error naming it.

    python -m stages.pickle [pickle.max_per_class=500]
"""

from __future__ import annotations

from pathlib import Path

from hawk.classes import read_classes_txt
from hawk.dedup import read_groups
from hawk.specset import build_specset
from stages._cli import load_config, parser, run


def main() -> None:
    cfg = load_config(parser(__doc__).parse_args())
    classes = read_classes_txt(cfg.paths.classes_txt)
    meta = build_specset(Path(cfg.paths.train_db), classes, Path(cfg.paths.specs), cfg.pickle.max_per_class,
                         int(cfg.pickle.seed), read_groups(Path(cfg.paths.dedup) / "duplicates.csv"),
                         bool(cfg.pickle.progress))
    counts = ", ".join(f"{c} {n}" for c, n in meta["per_class"].items())
    print(f"pickle: {meta['count']} spectrograms of {len(classes)} classes ({counts}) in {cfg.paths.specs}")


if __name__ == "__main__":
    run(main)
