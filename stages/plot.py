"""plot: draw a class's spectrograms from its database as images (the seed's tools/plot_from_db.py).

Images are named {recording stem}-{offset:.2f}.jpeg, low frequencies at the bottom. Run by hand to look
at a class, or to pick spectrograms of a small class by deleting the bad images.

    python -m stages.plot --code RIWH [--num 100] [--out data/images/RIWH]
"""

from __future__ import annotations

from pathlib import Path

from omegaconf import OmegaConf

from hawk.errors import HawkError
from hawk.plot import plot_db
from hawk.spectrogram import SpecSettings
from stages._cli import load_config, parser, run


def main() -> None:
    p = parser(__doc__)
    p.add_argument("--code", required=True, help="class code")
    p.add_argument("--num", type=int, default=None, help="random sample of this many (default: all)")
    p.add_argument("--out", default=None, help="image folder (default: paths.images/<code>)")
    args = p.parse_args()
    cfg = load_config(args)
    db = Path(cfg.paths.db) / f"{args.code}.db"
    if not db.exists():
        raise HawkError(f"{db} does not exist; run `dvc repro extract@{args.code}` first")
    out = Path(args.out or Path(cfg.paths.images) / args.code)
    paths = plot_db(db, out, SpecSettings.from_mapping(OmegaConf.to_container(cfg.audio, resolve=True)), args.num)
    print(f"{len(paths)} images in {out}")


if __name__ == "__main__":
    run(main)
