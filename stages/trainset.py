"""trainset: data/train.db, the training database of all classes (HawkEars schema), in classes.txt order.

Merges the per-class selections (data/select/<CODE>.db). Open it with DB Browser for SQLite, or with
HawkEars' own tools.

    python -m stages.trainset
"""

from __future__ import annotations

from pathlib import Path

from hawk.classes import read_classes_txt
from hawk.curation import merge_dbs
from hawk.errors import HawkError
from stages._cli import load_config, parser, run


def main() -> None:
    cfg = load_config(parser(__doc__).parse_args())
    codes = [code for _, code in read_classes_txt(cfg.paths.classes_txt)]
    parts = [Path(cfg.paths.select) / f"{c}.db" for c in codes]
    missing = [str(p) for p in parts if not p.exists()]
    if missing:
        raise HawkError(f"no selection {', '.join(missing)}; run the select stage for those classes")
    n = merge_dbs(parts, Path(cfg.paths.train_db))
    print(f"trainset: {n} spectrograms of {len(codes)} classes in {cfg.paths.train_db}")


if __name__ == "__main__":
    run(main)
